#!/usr/bin/env bash
# Create (or reuse) a side virtualenv holding LiteLLM's proxy, the gateway peer.
# Idempotent. The last line printed is the venv's bin directory.
#   GPUFLEET_CACHE_DIR   cache root (default ~/.cache/gpufleet)
#   LITELLM_VERSION      the release to install (default 1.80.0)
set -euo pipefail

CACHE="${GPUFLEET_CACHE_DIR:-$HOME/.cache/gpufleet}"
VERSION="${LITELLM_VERSION:-1.80.0}"
VENV="$CACHE/peers/litellm-$VERSION-venv"
STAMP="$VENV/.litellm-$VERSION-installed"

mkdir -p "$CACHE/peers"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" >&2
fi
if [ ! -f "$STAMP" ] || [ ! -x "$VENV/bin/litellm" ]; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip >&2 || true
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "litellm[proxy]==$VERSION" >&2
    touch "$STAMP"
fi
echo "$VENV/bin"
