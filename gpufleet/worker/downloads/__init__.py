"""Model files on the worker: where the engine's model comes from, for each deployment source.

``ModelFiles.path_for(model, progress, layout)`` is the one entry point the supervisor uses: it
returns the local path to hand to the engine, downloading first when the source is a hub, and
raises ``ModelFileError`` saying what is wrong otherwise. What that path is depends on what the
engine loads (``layout.LAYOUTS[engine.model_layout]``): for llama.cpp the GGUF (the first shard of
a split model), for vLLM the Hugging Face model directory (a repository snapshot of the files it
needs).
``progress(percent)`` is called while a download runs (the caller rate-limits what it reports);
it is not called at all when the files are already cached.

Sources (``SOURCES``): ``local_path`` (confined to ``--allowed-model-dirs``), ``huggingface``,
``modelscope`` and ``ollama_library``. Downloads are cached under ``<data-dir>/models/<source>/``
and shared by every instance of this worker:

- one download per source identity (``Source.key``) at a time: concurrent requests wait for the
  same download (``SharedDownload``);
- a download that completed leaves a marker (``Markers``), so the next request (a second
  deployment, a restart of the worker) finds the files without asking the hub;
- the server is told about each download (``PUT /api/model-files``): ``downloading`` with
  progress, then ``ready`` with the resolved paths, or ``error`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.schemas.model_files import ModelFileState
from gpufleet.schemas.models import ModelPublic, ModelSource
from gpufleet.worker.client import ServerClient
from gpufleet.worker.downloads.environment import quiet
from gpufleet.worker.downloads.huggingface import HuggingFace
from gpufleet.worker.downloads.layout import GGUF, LAYOUTS, Layout
from gpufleet.worker.downloads.markers import Markers
from gpufleet.worker.downloads.meter import DownloadCancelled, Meter
from gpufleet.worker.downloads.modelscope import ModelScope
from gpufleet.worker.downloads.ollama import Ollama
from gpufleet.worker.downloads.reports import FileReports
from gpufleet.worker.downloads.shared import Progress, SharedDownload
from gpufleet.worker.downloads.source import Plan, Source

__all__ = ["LAYOUTS", "Layout", "ModelFileError", "ModelFiles", "Progress"]

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 0.5  # seconds between progress readings of a running download


class ModelFiles:
    def __init__(
        self,
        data_dir: Path,
        allowed_model_dirs: list[Path],
        client: ServerClient,
        *,
        huggingface_token: str | None = None,
    ) -> None:
        quiet()  # before any hub library (or tqdm) is imported: they read these variables at import time
        self.cache = data_dir / "models"
        self.allowed_model_dirs = allowed_model_dirs
        self.sources: dict[ModelSource, Source] = {
            ModelSource.HUGGINGFACE: HuggingFace(self.cache / "huggingface", huggingface_token),
            ModelSource.MODELSCOPE: ModelScope(self.cache / "modelscope"),
            ModelSource.OLLAMA_LIBRARY: Ollama(self.cache / "ollama_library"),
        }
        self.markers = Markers(self.cache)
        self.reports = FileReports(client)
        self._downloads: dict[str, SharedDownload] = {}
        self._announced: set[str] = set()  # keys reported ready by this process

    async def path_for(self, model: ModelPublic, progress: Progress, layout: Layout = GGUF) -> Path:
        """What the engine loads for ``model`` (``layout``); raises ``ModelFileError`` saying what is wrong."""
        if model.source == ModelSource.LOCAL_PATH:
            if not model.local_path:
                raise ModelFileError("the deployment has source local_path but no local_path")
            return layout.local(model.local_path, self.allowed_model_dirs)
        source = self.sources.get(model.source)
        if source is None:
            raise ModelFileError(f"model source {model.source} is not supported by this worker")
        return layout.entry(await self._files(model, source, layout, progress))

    async def _files(self, model: ModelPublic, source: Source, layout: Layout, progress: Progress) -> Path:
        """The first of the downloaded files (downloading them unless a complete download is cached)."""
        key = source.key(model, layout)
        download = self._downloads.get(key)
        if download is None:
            cached = await asyncio.to_thread(self.markers.read, key)
            if cached:
                await self._announce(model.source, key, cached)
                return cached[0]
            download = self._downloads.get(key)  # another request may have started it meanwhile
            if download is None:
                download = self._downloads[key] = SharedDownload(key)
                download.start(self._download(download, source, model, layout))
        return await download.wait(progress)

    async def _download(self, download: SharedDownload, source: Source, model: ModelPublic, layout: Layout) -> Path:
        key, kind = download.key, model.source
        await self.reports.send(kind, key, ModelFileState.DOWNLOADING, message="listing the files", progress=0)
        try:
            plan = await asyncio.to_thread(source.plan, model, layout)
            await self._fetch(download, kind, plan)
            paths = list(plan.paths)
            await asyncio.to_thread(self.markers.write, key, paths)
        except DownloadCancelled:
            message = "download stopped: no instance on this worker needs these files any more"
            await self.reports.send(kind, key, ModelFileState.ERROR, message=message)
            raise ModelFileError(message) from None
        except ModelFileError as exc:
            await self.reports.send(kind, key, ModelFileState.ERROR, message=str(exc))
            raise
        except OSError as exc:  # the cache itself: disk full, permissions
            message = f"cannot store the model files under {self.cache}: {exc}"
            await self.reports.send(kind, key, ModelFileState.ERROR, message=message)
            raise ModelFileError(message) from exc
        except Exception as exc:  # a hub library failing in a way we did not foresee: the instance must say so
            logger.exception("downloading %s failed unexpectedly", key)
            message = f"downloading {key} failed unexpectedly: {type(exc).__name__}: {exc}"
            await self.reports.send(kind, key, ModelFileState.ERROR, message=message)
            raise ModelFileError(message) from exc
        finally:
            self._downloads.pop(key, None)
        self._announced.add(key)
        await self.reports.send(
            kind, key, ModelFileState.READY, progress=100, size=plan.size, paths=[str(p) for p in paths]
        )
        return paths[0]

    async def _fetch(self, download: SharedDownload, kind: ModelSource, plan: Plan) -> None:
        meter = Meter(plan.sizes)
        download.attach(meter)
        watcher = asyncio.create_task(self._watch(download, kind, plan))
        try:
            await asyncio.to_thread(plan.fetch, meter)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, download: SharedDownload, kind: ModelSource, plan: Plan) -> None:
        """Pass the download's progress to the waiting instances and the server, until cancelled."""
        files = f"{len(plan.paths)} files" if len(plan.paths) > 1 else plan.paths[0].name
        while True:
            await download.tell_listeners()
            percent = download.percent
            await self.reports.send(
                kind,
                download.key,
                ModelFileState.DOWNLOADING,
                message=f"downloading {files}: {percent:.0f}%",
                progress=percent,
                size=plan.size,
            )
            await asyncio.sleep(WATCH_INTERVAL)

    async def _announce(self, kind: ModelSource, key: str, paths: list[Path]) -> None:
        """Tell the server once per process that a cached download is here (it may predate the record)."""
        if key in self._announced:
            return
        self._announced.add(key)
        size = sum(p.stat().st_size for p in paths)
        await self.reports.send(kind, key, ModelFileState.READY, progress=100, size=size, paths=[str(p) for p in paths])
