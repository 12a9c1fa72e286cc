"""``GET /instances/{id}/logs`` on the worker: an engine's log, its last lines and (``follow``) what follows.

Called by the server (bearer token, see ``api_auth``), which relays the bytes to the user. The
body is the log's raw bytes (``text/plain``). With ``follow`` the response stays open and
appended bytes are sent as they arrive (the file is polled every ``poll_interval`` seconds; file
I/O runs in threads), until the client goes away or the instance stops being this worker's
(deleted, stopped, placed elsewhere); what the engine wrote last is sent before the end.

The tail is read before the response starts: whatever the engine writes after a client has
the response headers is in the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from gpufleet.schemas.logs import LOG_TAIL_DEFAULT, LOG_TAIL_MAX
from gpufleet.worker.log_files import LogReader

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.25
MEDIA_TYPE = "text/plain; charset=utf-8"

# Why following should end now, or None to go on.
EndReason = Callable[[], Awaitable[str | None]]


def logs_router(
    log_path: Callable[[int], Path | None], worker_name: Callable[[], str], poll_interval: float = POLL_INTERVAL
) -> APIRouter:
    """``log_path(instance_id)``: the log of an instance this worker runs as main worker, else None."""
    router = APIRouter()

    @router.get("/instances/{instance_id}/logs")
    async def instance_logs(
        instance_id: int,
        request: Request,
        tail: Annotated[int, Query(ge=0, le=LOG_TAIL_MAX, description="lines from the end")] = LOG_TAIL_DEFAULT,
        follow: Annotated[bool, Query(description="keep sending what is appended")] = False,
    ) -> StreamingResponse:
        path = log_path(instance_id)
        if path is None:
            raise HTTPException(404, f"worker {worker_name()} runs no engine for instance {instance_id}")
        try:
            reader, head = await asyncio.to_thread(_open_at_tail, path, tail)
        except FileNotFoundError:
            raise HTTPException(
                404, f"instance {instance_id} has no log on worker {worker_name()} yet: its engine has not started"
            ) from None
        except OSError as exc:
            logger.error("cannot read the log of instance %d (%s): %s", instance_id, path, exc)
            raise HTTPException(
                500, f"worker {worker_name()} cannot read the log of instance {instance_id}: {exc}"
            ) from exc

        async def end_reason() -> str | None:
            if log_path(instance_id) != path:
                return "the instance no longer runs here"
            if await request.is_disconnected():
                return "the client went away"
            return None

        return StreamingResponse(
            stream_log(reader, instance_id, head, follow, end_reason, poll_interval), media_type=MEDIA_TYPE
        )

    return router


def _open_at_tail(path: Path, count: int) -> tuple[LogReader, bytes]:
    """A reader of ``path`` and its last ``count`` lines (blocking; the reader is closed on failure)."""
    reader = LogReader(path)
    try:
        return reader, reader.tail(count)
    except BaseException:
        reader.close()
        raise


async def stream_log(
    reader: LogReader, instance_id: int, head: bytes, follow: bool, end_reason: EndReason, poll_interval: float
) -> AsyncIterator[bytes]:
    """``head`` (the tail already read), then (``follow``) appended bytes until ``end_reason`` gives one.

    Cancelled (the server stops iterating when the client disconnects): the file is closed and
    the end is logged, like any other end of a follow.
    """
    reason = "the client went away"
    try:
        if head:
            yield head
        if not follow:
            return
        while True:
            chunk = await asyncio.to_thread(reader.appended)
            if chunk:
                yield chunk
                continue
            ended = await end_reason()
            if ended is not None:
                reason = ended
                break
            await asyncio.sleep(poll_interval)
        if reason != "the client went away":
            while chunk := await asyncio.to_thread(reader.appended):  # the engine's last words
                yield chunk
    finally:
        reader.close()
        if follow:
            logger.info("stopped following the log of instance %d: %s", instance_id, reason)
