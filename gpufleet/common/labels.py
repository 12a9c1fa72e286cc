"""The grammar of worker names and labels, shared by the settings (``--labels``, ``--worker-name``),
the API's wire models and the CLI.

A worker name becomes part of every device id (``NAME:cuda:0``), so it allows no ``:``.
Label keys and values follow Kubernetes' spirit: short, printable, no spaces.
"""

from __future__ import annotations

import re

LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._:/+-]{0,128}$")
WORKER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


def validate_worker_name(value: str) -> str:
    if not WORKER_NAME.match(value):
        raise ValueError(
            "worker name must be 1-63 letters, digits, '.', '_' or '-', starting and ending with a "
            "letter or digit (it becomes part of device ids like NAME:cuda:0)"
        )
    return value


def validate_label(key: str, value: str) -> None:
    if not LABEL_KEY.match(key):
        raise ValueError(
            f"label key {key!r} must be 1-63 letters, digits, '.', '_', '/' or '-', "
            "starting and ending with a letter or digit"
        )
    if not isinstance(value, str) or not LABEL_VALUE.match(value):
        raise ValueError(f"label value {value!r} for {key!r} must be at most 128 letters, digits or ._:/+-")


def parse_labels(raw: str | dict[str, str] | None) -> dict[str, str]:
    """``k=v,k2=v2`` → dict; raises ``ValueError`` naming the bad pair."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        pairs = []
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                raise ValueError(f"label {item!r} is not of the form key=value")
            key, value = item.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    labels: dict[str, str] = {}
    for key, value in pairs:
        validate_label(key, value)
        labels[key] = value
    return labels
