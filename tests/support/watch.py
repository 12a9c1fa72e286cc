"""Read a ``/api/watch`` stream in the background and collect its events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx


class WatchReader:
    def __init__(self, client: httpx.AsyncClient, kinds: str) -> None:
        self.client = client
        self.kinds = kinds
        self.events: list[dict[str, Any]] = []
        self.status: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> WatchReader:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        async with self.client.stream("GET", "/api/watch", params={"kinds": self.kinds}) as response:
            self.status = response.status_code
            async for line in response.aiter_lines():
                if line.strip():
                    self.events.append(json.loads(line))
                    self._arrived.set()

    async def finished(self) -> None:
        """Returns when the server has ended the stream."""
        assert self._task is not None
        await asyncio.shield(self._task)

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first event (already received or arriving within ``timeout``) matching ``predicate``."""
        deadline = asyncio.get_running_loop().time() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no matching event within {timeout}s; got {self.events}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
