"""Telling the server about this worker's downloads (``PUT /api/model-files``).

State changes are always sent; progress at most once a second per file (DESIGN §7: download
progress is coalesced). A report that cannot be delivered is logged and dropped: the next one
carries the whole state again (reports are upserts), and a download never fails because the
server is briefly away.
"""

from __future__ import annotations

import asyncio
import logging

from gpufleet.schemas.model_files import ModelFileReport, ModelFileState
from gpufleet.schemas.models import ModelSource
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between progress reports of one file


class FileReports:
    def __init__(self, client: ServerClient) -> None:
        self.client = client
        self._last: dict[str, tuple[ModelFileState, float]] = {}  # key -> (state, loop time) last sent

    async def send(
        self,
        source: ModelSource,
        key: str,
        state: ModelFileState,
        *,
        message: str | None = None,
        progress: float | None = None,
        size: int | None = None,
        paths: list[str] | None = None,
    ) -> None:
        now = asyncio.get_running_loop().time()
        last_state, last_at = self._last.get(key, (None, float("-inf")))
        if state == last_state == ModelFileState.DOWNLOADING and now - last_at < PROGRESS_INTERVAL:
            return
        self._last[key] = (state, now)
        body = ModelFileReport(
            source=source,
            source_key=key,
            state=state,
            state_message=message,
            download_progress=progress,
            size=size,
            resolved_paths=paths or [],
        )
        try:
            await self.client.report_model_file(body)
        except ServerUnavailable as exc:
            logger.warning("could not report model file %s (%s): %s", key, state.value, exc)
        except ServerRejected as exc:
            logger.error("server refused the report of model file %s (%s): %s", key, state.value, exc.detail)
