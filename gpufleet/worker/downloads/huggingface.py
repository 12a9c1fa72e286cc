"""Hugging Face: the files of a ``huggingface`` deployment, fetched with ``huggingface_hub``.

Three calls, all against ``$HF_ENDPOINT`` (default huggingface.co, or any mirror that speaks the
Hub's API): the ``main`` revision is resolved to a commit (``/api/models/{repo}/revision/main``),
the commit's file tree is listed (``/api/models/{repo}/tree/{commit}``, which gives sizes for
progress), and each needed file is downloaded with ``hf_hub_download`` pinned to that commit, so
the shards of a split model always come from one commit even if the repository changes meanwhile.

Files land in ``<cache>/huggingface/<owner>/<repo>/<path in repo>`` (``local_dir`` mode: the
repository's layout, so shards sit next to each other as llama.cpp expects). A file already
there from an earlier download of the same commit is not fetched again.

The token is ``--huggingface-token`` when given; otherwise ``huggingface_hub`` uses ``HF_TOKEN``
or a token saved by ``hf auth login``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.schemas.models import ModelPublic
from gpufleet.worker.downloads.environment import hf_endpoint
from gpufleet.worker.downloads.layout import GGUF, Layout
from gpufleet.worker.downloads.meter import Meter
from gpufleet.worker.downloads.source import Plan

if TYPE_CHECKING:
    from tqdm import tqdm

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HuggingFace:
    def __init__(self, root: Path, token: str | None) -> None:
        self.root = root
        self.token = token

    def key(self, model: ModelPublic, layout: Layout = GGUF) -> str:
        return layout.key("huggingface", model.huggingface_repo_id, model.huggingface_filename)

    def plan(self, model: ModelPublic, layout: Layout = GGUF) -> Plan:
        from huggingface_hub import HfApi
        from huggingface_hub.hf_api import RepoFile

        repo = model.huggingface_repo_id or ""
        if not REPO_ID.match(repo) or ".." in repo:
            raise ModelFileError(f"huggingface_repo_id {repo!r} is not of the form OWNER/NAME")
        endpoint = hf_endpoint()
        api = HfApi(endpoint=endpoint, token=self.token)
        with _hub_errors(repo, endpoint, None):
            commit = api.model_info(repo, revision="main").sha
            if commit is None:
                raise ModelFileError(f"{endpoint} did not say which commit is the main revision of {repo}")
            sizes = {
                f.path: f.size
                for f in api.list_repo_tree(repo, revision=commit, recursive=True)
                if isinstance(f, RepoFile)
            }
        names = layout.needed(list(sizes), model.huggingface_filename, f"Hugging Face repository {repo}")
        destination = self.root / repo
        paths = tuple(_inside(destination, name) for name in names)
        fetch = partial(self._fetch, repo, commit, endpoint, destination, names)
        return Plan(sizes={name: sizes[name] for name in names}, paths=paths, fetch=fetch)

    def _fetch(self, repo: str, commit: str, endpoint: str, destination: Path, names: list[str], meter: Meter) -> None:
        from huggingface_hub import hf_hub_download

        for name in names:
            meter.check()
            with _hub_errors(repo, endpoint, name):
                hf_hub_download(
                    repo,
                    name,
                    revision=commit,
                    local_dir=destination,
                    cache_dir=self.root / ".hub-cache",  # read only, and never the user's ~/.cache
                    endpoint=endpoint,
                    token=self.token,
                    tqdm_class=_counting_bar(meter, name),
                )
            meter.complete(name)


def _inside(root: Path, name: str) -> Path:
    path = (root / name).resolve()
    if root.resolve() not in path.parents:
        raise ModelFileError(f"the hub listed a file outside its repository: {name!r}")
    return root / name


def _counting_bar(meter: Meter, name: str) -> type[tqdm[Any]]:
    """A silent progress bar class that counts the bytes of ``name`` on ``meter`` (and stops the
    download by raising ``DownloadCancelled`` once the meter is cancelled)."""
    from tqdm import tqdm

    class CountingBar(tqdm):  # type: ignore[type-arg]  # generic only in the type stubs
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)
            initial = kwargs.get("initial") or 0
            if initial:
                meter.add(name, int(initial))

        def update(self, n: float | None = 1) -> bool | None:
            meter.add(name, int(n or 0))
            return super().update(n)

    return CountingBar


@contextmanager
def _hub_errors(repo: str, endpoint: str, name: str | None) -> Iterator[None]:
    """Turns ``huggingface_hub`` and network errors into ``ModelFileError`` naming the repo and file."""
    import httpx2
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"{name} of " if name else ""
    token_hint = "give the worker a token with --huggingface-token (or HF_TOKEN)"
    try:
        yield
    except ModelFileError:
        raise
    except GatedRepoError as exc:
        raise ModelFileError(
            f"Hugging Face repository {repo} is gated: accept its terms on the Hub and {token_hint}"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelFileError(
            f"Hugging Face repository {repo} was not found at {endpoint} (if it is private, {token_hint})"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelFileError(f"Hugging Face repository {repo} has no main revision at {endpoint}") from exc
    except EntryNotFoundError as exc:
        raise ModelFileError(f"file {name} was not found in Hugging Face repository {repo} at {endpoint}") from exc
    except (HfHubHTTPError, httpx2.HTTPError, OSError, ValueError) as exc:  # network, disk, malformed answers
        raise ModelFileError(f"cannot download {what}{repo} from {endpoint}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
