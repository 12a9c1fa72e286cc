"""``gpufleet usage``: tokens and requests by model, user or key over a time range."""

from __future__ import annotations


def usage() -> None:
    """Tokens and requests by model, user or API key."""
