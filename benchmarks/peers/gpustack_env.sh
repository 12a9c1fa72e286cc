#!/usr/bin/env bash
# Create (or reuse) a side virtualenv holding GPUStack 2.3.0, the scheduler peer.
# Idempotent. The last line printed is the venv's python.
#   GPUFLEET_CACHE_DIR   cache root (default ~/.cache/gpufleet)
#   PYTHON311            interpreter to build the venv with (default python3.11)
set -euo pipefail

CACHE="${GPUFLEET_CACHE_DIR:-$HOME/.cache/gpufleet}"
VENV="$CACHE/peers/gpustack-2.3.0-venv"
PY="${PYTHON311:-python3.11}"
STAMP="$VENV/.gpustack-2.3.0-installed"

mkdir -p "$CACHE/peers"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" >&2
fi
if [ ! -f "$STAMP" ] || ! "$VENV/bin/python" -c "import gpustack.scheduler.scheduler" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip >&2 || true
    "$VENV/bin/python" -m pip install --disable-pip-version-check "gpustack==2.3.0" >&2
    "$VENV/bin/python" -c "import gpustack.scheduler.scheduler" >&2
    touch "$STAMP"
fi
echo "$VENV/bin/python"
