"""``gpufleet start --print-config``: every setting's merged value and where it came from.

An operator debugging "why does the worker listen on 8081?" needs to see the winner of flag >
``GPUFLEET_*`` > config file > default for each setting, in one place. Secrets are never printed:
a set secret shows as ``****`` (and a database URL keeps everything but its password), so the
output can be pasted into an issue.
"""

from __future__ import annotations

import json
from typing import Any

from gpufleet.common.units import GiB
from gpufleet.config import Settings

SECRETS = frozenset({"token", "bootstrap_password", "huggingface_token"})
MASK = "****"


def shown_value(name: str, value: Any) -> str:
    """The value as a person would write it in the config file, with secrets masked."""
    if value is None:
        return ""
    if name in SECRETS:
        return MASK
    if name == "database_url":
        from sqlalchemy.engine import make_url  # a tenth of a second: only when a URL is shown

        url = make_url(value)
        return url.render_as_string(hide_password=True) if url.password else str(value)
    if name == "system_reserved":
        return json.dumps({kind: amount / GiB for kind, amount in value.items()})
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def show_config(settings: Settings, sources: dict[str, str]) -> None:
    """Print one line per setting: its flag, its value (secrets masked) and its source.

    Plain aligned columns, never wrapped (unlike a table on a narrow terminal), so the output
    reads the same in a pipe, a log or an issue."""
    rows = [("setting", "value", "from")]
    rows += [
        ("--" + name.replace("_", "-"), shown_value(name, getattr(settings, name)), sources[name])
        for name in Settings.model_fields
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for setting, value, source in rows:
        print(f"{setting:<{widths[0]}}  {value:<{widths[1]}}  {source}")
