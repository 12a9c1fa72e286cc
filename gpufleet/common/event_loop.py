"""The event loop gpufleet runs on: uvloop where it is installed (it comes with uvicorn[standard] on
Linux and macOS), the standard asyncio loop elsewhere (Windows).

uvloop roughly halves the cost of each socket operation, which is most of what the gateway does per
request. ``GPUFLEET_ASYNCIO_LOOP=asyncio`` keeps the standard loop (to compare, or to debug).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

LOOP_ENV = "GPUFLEET_ASYNCIO_LOOP"


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for ``asyncio.Runner``; None means asyncio's default loop."""
    if os.environ.get(LOOP_ENV, "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
