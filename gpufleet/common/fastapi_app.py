"""FastAPI apps without FastAPI's built-in OpenTelemetry instrumentation.

Recent FastAPI releases trace, meter and log every request through OpenTelemetry unless told not
to. gpufleet keeps telemetry off in everything it runs (its own metrics are at ``/metrics``), and
the instrumentation costs time on every request. Older FastAPI releases have no such option.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI

TELEMETRY_OFF = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def quiet_fastapi(**kwargs: Any) -> FastAPI:
    """``FastAPI(**kwargs)`` with its telemetry switched off where the installed FastAPI has any."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        kwargs.setdefault("telemetry", TELEMETRY_OFF)
    return FastAPI(**kwargs)
