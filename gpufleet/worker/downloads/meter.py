"""Bytes received by one download, shared by the thread that downloads and the loop that reports.

The downloading thread calls ``add`` as bytes arrive (a negative count when a retry starts a file
over) and ``complete`` when a file is in place; the event loop reads ``percent``. ``cancel()``
makes the next ``add`` raise ``DownloadCancelled`` in the downloading thread: a thread cannot be
interrupted from outside, so this is how a download nobody waits for any more stops (and how a
worker that is shutting down is not held up by a download in progress).
"""

from __future__ import annotations

import threading


class DownloadCancelled(Exception):  # a signal like asyncio.CancelledError, not a GpufleetError
    """Raised in the downloading thread once the download was cancelled.

    Not an error for a person (nothing failed), so not a ``GpufleetError``: a handler of those must
    never swallow it; the download's owner catches it by name.
    """


class Meter:
    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = dict(sizes)  # file name in the source -> bytes
        self._done = dict.fromkeys(sizes, 0)
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def percent(self) -> float:
        """0-100; a file of unknown size counts once complete."""
        with self._lock:
            done = sum(self._done.values())
        return min(100.0, 100.0 * done / self.total) if self.total else 0.0

    def add(self, name: str, count: int) -> None:
        self.check()
        with self._lock:
            size = self.sizes.get(name, 0)
            self._done[name] = max(0, min(size, self._done.get(name, 0) + count)) if size else 0

    def set(self, name: str, done: int) -> None:
        """``done`` bytes of ``name`` are in place (a resumed download starts past zero)."""
        self.check()
        with self._lock:
            self._done[name] = max(0, min(self.sizes.get(name, 0), done))

    def complete(self, name: str) -> None:
        with self._lock:
            self._done[name] = self.sizes.get(name, 0)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise ``DownloadCancelled`` if the download was cancelled (call between blocking steps)."""
        if self._cancelled.is_set():
            raise DownloadCancelled("the download was cancelled")
