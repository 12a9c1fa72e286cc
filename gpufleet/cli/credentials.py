"""Where ``gpufleet login`` keeps its session tokens: one per server URL, in the user's config dir.

``$GPUFLEET_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/gpufleet``, else ``~/.config/gpufleet``; the file
``credentials.json`` is written with mode 0600 (a session token is as good as the password for its
lifetime) in a directory of mode 0700, replaced atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gpufleet.common.paths import make_private_dir, write_secret_file

FILE = "credentials.json"


def config_dir() -> Path:
    explicit = os.environ.get("GPUFLEET_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gpufleet"


def _key(server: str) -> str:
    return server.rstrip("/")


def _read() -> dict[str, str]:
    try:
        data = json.loads((config_dir() / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(tokens: dict[str, str]) -> Path:
    make_private_dir(config_dir())
    path = config_dir() / FILE
    write_secret_file(path, json.dumps(tokens, indent=2, sort_keys=True))
    return path


def load(server: str) -> str | None:
    """The session token stored for ``server``, if any."""
    return _read().get(_key(server))


def save(server: str, token: str) -> Path:
    """Store ``token`` for ``server``; returns the file's path."""
    tokens = _read()
    tokens[_key(server)] = token
    return _write(tokens)


def forget(server: str) -> bool:
    """Remove the token stored for ``server``; True if there was one."""
    tokens = _read()
    if tokens.pop(_key(server), None) is None:
        return False
    _write(tokens)
    return True
