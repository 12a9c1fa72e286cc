#!/usr/bin/env bash
# Create the project's virtual environment; on Debian-like machines without the venv module, install it.
set -eu
python=${1:-python3}
venv=${2:-.venv}
if ! command -v "$python" >/dev/null; then
  echo "error: $python not found: install Python 3.11 or newer" >&2; exit 1
fi
"$python" - <<'PY' || { echo "error: gpufleet needs Python 3.11 or newer" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c "import ensurepip" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv
  else
    echo "error: the Python venv module is missing: install python3-venv" >&2; exit 1
  fi
fi
[ -x "$venv/bin/pip" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
