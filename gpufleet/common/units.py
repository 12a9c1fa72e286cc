"""Byte-size helpers: every memory figure in gpufleet is an integer number of bytes."""

from __future__ import annotations

GiB = 1024**3
MiB = 1024**2


def gib(value: float) -> int:
    return int(value * GiB)


def format_bytes(value: int) -> str:
    """Human form used in messages, e.g. ``23.5 GiB``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"
