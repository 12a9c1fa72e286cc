"""How ``gpufleet start`` answers SIGINT (Ctrl-C) and SIGTERM: stop gracefully, and within 10 s.

- The first signal sets the stop event: the launcher stops the embedded worker (which stops its
  engines unless ``--keep-engines``, and tells the server it leaves), then the server.
- A second signal while stopping, or the stop still under way ``STOP_WITHIN`` seconds after the
  first, stops at once: ``at_once`` runs (it SIGKILLs the engines being stopped, unless
  ``--keep-engines``) and the process exits with 128 + the signal's number, like a process the
  signal killed. Nothing else is waited for: a stop that hangs never keeps a newcomer waiting.

A SIGKILL is not seen at all: engines run in their own sessions and keep serving; the next start
re-adopts them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)

STOP_WITHIN = 10.0  # seconds from the first signal to the process's exit, at most
_MARGIN = 0.5  # seconds kept for the forced exit itself


class StopSignals:
    """Install with ``install(loop)``; ``stop`` is the launcher's stop event."""

    def __init__(self, stop: asyncio.Event, at_once: Callable[[], None]) -> None:
        self.stop = stop
        self.at_once = at_once
        self._first: int | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.received, signum)

    def received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._first is None:
            self._first = signum
            logger.info("%s: stopping (send it again to stop at once)", name)
            self.stop.set()
            asyncio.get_running_loop().call_later(STOP_WITHIN - _MARGIN, self._overdue)
            return
        logger.warning("%s again: stopping at once", name)
        self._exit_now(signum)

    def _overdue(self) -> None:
        assert self._first is not None
        logger.warning("still stopping after %.0fs: stopping at once", STOP_WITHIN - _MARGIN)
        self._exit_now(self._first)

    def _exit_now(self, signum: int) -> None:
        try:
            self.at_once()
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(128 + signum)
