"""``gpufleet chat MODEL``: a streamed chat through the gateway, interactive or one-shot."""

from __future__ import annotations


def chat() -> None:
    """Chat with a model through the gateway."""
