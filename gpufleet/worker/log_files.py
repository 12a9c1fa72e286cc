"""Reading an engine's log file: its last lines, then whatever is appended to it.

The supervisor appends every run of an engine to one file per instance. ``LogReader`` holds one
open handle, so an external rotation (rename + new file) or truncation (``copytruncate``) is
noticed and handled: after a rename the old file is read to its end and then the new file from
its start; after a truncation reading restarts at the beginning. Every method blocks (plain file
I/O): callers in the event loop run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

CHUNK = 64 * 1024
MAX_TAIL_BYTES = 8 * 1024 * 1024  # a tail never reads more than this, whatever ``count`` says


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


class LogReader:
    """One log file: ``tail()`` once, then ``appended()`` repeatedly. Raises FileNotFoundError if absent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO = path.open("rb")
        self._identity = _identity(os.fstat(self._handle.fileno()))
        self.offset = 0

    def tail(self, count: int) -> bytes:
        """The last ``count`` lines (a last line without its newline counts), at most ``MAX_TAIL_BYTES``.

        Sets the offset to where the file ended at this moment, so ``appended()`` continues
        exactly after what this returned.
        """
        handle = self._handle
        end = handle.seek(0, os.SEEK_END)
        self.offset = end
        if count <= 0 or end == 0:
            return b""
        data = b""
        position = end
        newlines = 0
        # One newline more than ``count`` marks where the wanted lines start (a final newline ends
        # the last line rather than starting another).
        while position > 0 and newlines <= count and len(data) < MAX_TAIL_BYTES:
            step = min(CHUNK, position)
            position -= step
            handle.seek(position)
            block = handle.read(step)
            newlines += block.count(b"\n")
            data = block + data
        cut = len(data) - 1 if data.endswith(b"\n") else len(data)
        for _ in range(count):
            cut = data.rfind(b"\n", 0, cut)
            if cut < 0:
                break
        if cut >= 0:
            start = cut + 1
        elif position == 0:
            start = 0  # the whole file has fewer lines than asked for
        else:  # the byte cap was hit: start at a line boundary if there is one
            first = data.find(b"\n")
            start = first + 1 if first >= 0 else 0
        data = data[start:]
        if len(data) > MAX_TAIL_BYTES:
            data = data[-MAX_TAIL_BYTES:]
        handle.seek(end)
        return data

    def appended(self) -> bytes:
        """What was written since the last call (up to ``CHUNK`` bytes); b"" if nothing yet."""
        chunk = self._handle.read(CHUNK)
        if chunk:
            self.offset += len(chunk)
            return chunk
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return b""  # renamed away and not recreated yet: the old file is read to its end
        if _identity(current) != self._identity:  # rotated: continue in the new file, from its start
            try:
                replacement = self.path.open("rb")
            except FileNotFoundError:
                return b""  # renamed away again meanwhile: look next time
            self._handle.close()
            self._handle = replacement
            self._identity = _identity(os.fstat(replacement.fileno()))
            self.offset = 0
        elif current.st_size < self.offset:  # truncated in place: what is there now is all new
            self._handle.seek(0)
            self.offset = 0
        else:
            return b""
        chunk = self._handle.read(CHUNK)
        self.offset += len(chunk)
        return chunk

    def close(self) -> None:
        self._handle.close()
