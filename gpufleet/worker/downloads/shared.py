"""One download in flight, shared by every instance on this worker that needs the same files.

Each waiting instance registers its progress callback; the download runs once, in its own task,
and every waiter gets its result (the path) or its error. A waiter that goes away (its instance
was stopped) unregisters; when the last one has gone the download is cancelled, since nobody
needs it any more (an Ollama blob resumes later where it stopped).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from gpufleet.worker.downloads.meter import Meter

logger = logging.getLogger(__name__)

Progress = Callable[[float], Awaitable[None]]


class SharedDownload:
    def __init__(self, key: str) -> None:
        self.key = key
        self.listeners: list[Progress] = []
        self.meter: Meter | None = None  # set once the files (and their sizes) are known
        self.cancelled = False
        self.task: asyncio.Task[Path] | None = None

    @property
    def percent(self) -> float:
        return self.meter.percent if self.meter else 0.0

    async def wait(self, progress: Progress) -> Path:
        """Wait for the download, reporting its progress to ``progress`` meanwhile."""
        assert self.task is not None
        self.listeners.append(progress)
        try:
            if not self.task.done():
                await progress(self.percent)
            return await asyncio.shield(self.task)
        finally:
            self.listeners.remove(progress)
            if not self.listeners and not self.task.done():
                logger.info("cancelling the download of %s: no instance waits for it any more", self.key)
                self.cancel()

    def start(self, work: Coroutine[Any, Any, Path]) -> None:
        self.task = asyncio.create_task(work, name=f"download {self.key}")
        self.task.add_done_callback(_retrieve)

    def cancel(self) -> None:
        self.cancelled = True
        if self.meter is not None:
            self.meter.cancel()

    def attach(self, meter: Meter) -> None:
        self.meter = meter
        if self.cancelled:
            meter.cancel()

    async def tell_listeners(self) -> None:
        percent = self.percent
        for listener in list(self.listeners):
            try:
                await listener(percent)
            except Exception:  # one instance's reporting trouble must not stop the others' progress
                logger.exception("reporting the download progress of %s failed", self.key)


def _retrieve(task: asyncio.Task[Path]) -> None:
    """Mark a failed download's exception as seen: its waiters (if any are left) got it, and the
    server got the reason; without waiters asyncio would log it again as never retrieved."""
    if not task.cancelled():
        task.exception()
