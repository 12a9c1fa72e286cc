"""``gpufleet start --config-file FILE``: the same settings as the flags, in a YAML mapping.

Keys are the flags' names, with dashes or underscores (``data-dir`` or ``data_dir``). The file is
the lowest source but the defaults: a flag beats ``GPUFLEET_<NAME>``, which beats the file
(``Settings.settings_customise_sources``). Invariants of what ``read_config_file`` returns: every
key is a ``Settings`` field; relative paths are made relative to the file's own directory (a
service started from ``/`` reads the same file the same way as a person in its directory); label
values are strings (YAML reads ``gpu: 4090`` as a number). Values are otherwise left to
``Settings`` to validate, so a bad value is reported exactly like the same bad flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gpufleet.common.errors import GpufleetError

# Settings fields that hold a path (resolved against the file's directory when relative).
PATH_FIELDS = frozenset(
    {"data_dir", "device_inventory", "llama_server_path", "rpc_server_path", "ssl_keyfile", "ssl_certfile", "server_ca"}
)


class ConfigFileError(GpufleetError):
    """The config file cannot be read or names something that is not a setting."""


def read_config_file(path: Path, fields: set[str]) -> dict[str, Any]:
    """The settings in ``path`` (a YAML mapping of flag names to values), keyed by field name."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"--config-file {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigFileError(f"--config-file {path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigFileError(f"--config-file {path}: must be a mapping of settings, like 'port: 8080'")
    values: dict[str, Any] = {}
    for key, value in document.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ConfigFileError(
                f"--config-file {path}: {key!r} is not a setting (see gpufleet start --help for the flags)"
            )
        if name in values:
            raise ConfigFileError(f"--config-file {path}: {key!r} is given twice")
        values[name] = _normalised(name, value, path.expanduser().resolve().parent)
    return values


def _normalised(name: str, value: Any, base: Path) -> Any:
    if value is None:
        return None
    if name in PATH_FIELDS:
        candidate = Path(str(value)).expanduser()
        return candidate if candidate.is_absolute() else base / candidate
    if name == "labels" and isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return value
