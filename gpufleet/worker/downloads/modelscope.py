"""ModelScope: the files of a ``modelscope`` deployment, fetched with the ModelScope hub SDK.

We use ``modelscope-hub`` (import ``modelscope_hub``), the hub client that the ``modelscope``
package itself delegates its downloads to since 1.3x, rather than ``modelscope`` whole: the same
code and HTTP calls for 2 MB installed instead of ~70 MB of training and pipeline code we never
import. It takes an explicit endpoint (``$MODELSCOPE_ENDPOINT``, default modelscope.cn), so it
can be pointed at a mirror or at the loopback mimic the tests use.

The repository's file list (``/api/v1/models/{repo}/repo/files``) gives sizes and sha256s; the
needed files are fetched with ``HubApi.download_repo`` restricted to exactly those entries, into
``<cache>/modelscope/<owner>/<repo>/<path in repo>``. The SDK resumes partial files and checks
each file's sha256; its own state (locks, the SDK's install id) stays under the cache too, not
in the user's home.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.schemas.models import ModelPublic
from gpufleet.worker.downloads.environment import modelscope_endpoint
from gpufleet.worker.downloads.layout import GGUF, Layout
from gpufleet.worker.downloads.meter import DownloadCancelled, Meter
from gpufleet.worker.downloads.source import Plan

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
REVISION = "master"


class ModelScope:
    def __init__(self, root: Path) -> None:
        self.root = root

    def key(self, model: ModelPublic, layout: Layout = GGUF) -> str:
        return layout.key("modelscope", model.modelscope_model_id, model.modelscope_file_path)

    def _api(self, endpoint: str) -> Any:
        from modelscope_hub import HubApi, HubConfig

        config = HubConfig(endpoint=endpoint, cache_dir=self.root / ".sdk-cache", config_dir=self.root / ".sdk")
        return HubApi(config)

    def plan(self, model: ModelPublic, layout: Layout = GGUF) -> Plan:
        repo = model.modelscope_model_id or ""
        if not REPO_ID.match(repo) or ".." in repo:
            raise ModelFileError(f"modelscope_model_id {repo!r} is not of the form OWNER/NAME")
        endpoint = modelscope_endpoint()
        with _hub_errors(repo, endpoint):
            listed = self._api(endpoint).list_repo_files(repo, "model", revision=REVISION)
        entries = {f.path: f for f in listed if f.type != "tree"}
        names = layout.needed(list(entries), model.modelscope_file_path, f"ModelScope repository {repo}")
        destination = self.root / repo
        paths = tuple(_inside(destination, name) for name in names)
        file_list = [{"Path": n, "Size": entries[n].size, "Sha256": entries[n].sha256, "Type": "blob"} for n in names]
        fetch = partial(self._fetch, repo, endpoint, destination, file_list)
        return Plan(sizes={n: entries[n].size for n in names}, paths=paths, fetch=fetch)

    def _fetch(
        self, repo: str, endpoint: str, destination: Path, file_list: list[dict[str, Any]], meter: Meter
    ) -> None:
        meter.check()
        with _hub_errors(repo, endpoint), _cancellation(meter):
            self._api(endpoint).download_repo(
                repo,
                "model",
                revision=REVISION,
                local_dir=destination,
                cache_dir=self.root / ".sdk-cache",
                file_list=file_list,
                progress_callbacks=[_counting_callback(meter)],
            )
        for entry in file_list:
            meter.complete(entry["Path"])


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if root.resolve() not in path.parents:
        raise ModelFileError(f"the hub listed a file outside its repository: {name!r}")
    return root / name


def _counting_callback(meter: Meter) -> type[Any]:
    """A ``ProgressCallback`` class counting each file's bytes on ``meter`` (the SDK makes one per file)."""
    from modelscope_hub import ProgressCallback

    class Counting(ProgressCallback):
        def update(self, size: int) -> None:
            meter.add(self.filename, size)

    return Counting


@contextmanager
def _cancellation(meter: Meter) -> Iterator[None]:
    """The SDK collects the ``DownloadCancelled`` our callback raised into its own error: restore it."""
    try:
        yield
    except Exception:
        if meter.cancelled:
            raise DownloadCancelled("the download was cancelled") from None
        raise


@contextmanager
def _hub_errors(repo: str, endpoint: str) -> Iterator[None]:
    """Turns the SDK's and the network's errors into ``ModelFileError`` naming the repository."""
    import requests
    from modelscope_hub.errors import (
        AuthenticationError,
        FileDownloadError,
        HubError,
        NotExistError,
        PermissionDeniedError,
    )

    try:
        yield
    except (ModelFileError, DownloadCancelled):
        raise
    except NotExistError as exc:
        raise ModelFileError(f"ModelScope repository {repo} was not found at {endpoint}: {_first_line(exc)}") from exc
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise ModelFileError(
            f"ModelScope refused access to {repo} at {endpoint} (set MODELSCOPE_API_TOKEN for private models): "
            f"{_first_line(exc)}"
        ) from exc
    except FileDownloadError as exc:
        failed = "; ".join(f"{path}: {_first_line(error)}" for path, error in exc.failed_files.items())
        raise ModelFileError(
            f"cannot download from ModelScope repository {repo} at {endpoint}: {failed or exc}"
        ) from exc
    except (HubError, requests.RequestException, OSError, ValueError) as exc:
        raise ModelFileError(
            f"cannot download from ModelScope repository {repo} at {endpoint}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
