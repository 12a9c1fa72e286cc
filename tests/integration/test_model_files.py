"""The worker's model file cache (``ModelFiles``) with a real server and the loopback hub mimic.

One download per source identity however many instances ask at once; a finished download is
found again without asking the hub (also after a worker restart); every download is reported to
the server (``PUT /api/model-files``) and listed for admins (``GET /api/model-files``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.worker.client import ServerClient
from gpufleet.worker.downloads import ModelFiles
from tests.support.builders import register_worker
from tests.support.deployments import deployment
from tests.support.hub_mimic import MimicHub, mimic_hub
from tests.support.server import RunningServer

HF_MODEL = deployment("huggingface", huggingface_repo_id="org/tiny", huggingface_filename="*Q4*")
OLLAMA_MODEL = deployment("ollama_library", ollama_library_model_name="tiny:q4")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MimicHub]:
    with mimic_hub() as running:
        for variable in ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "OLLAMA_REGISTRY"):
            monkeypatch.setenv(variable, running.url)
        repo = tmp_path / "hub" / "tiny"
        repo.mkdir(parents=True)
        (repo / "tiny-Q4_0.gguf").write_bytes(os.urandom(1_000_000))
        (repo / "tiny-Q8_0.gguf").write_bytes(os.urandom(2_000))
        running.huggingface("org/tiny", repo)
        running.ollama("tiny:q4", repo / "tiny-Q4_0.gguf")
        yield running


async def worker_client(server: RunningServer, name: str) -> ServerClient:
    async with await server.admin() as admin:
        registered = await register_worker(admin, server.token, name)
    client = ServerClient([server.url], server.token)
    client.credential = registered["credential"]
    return client


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ServerClient]:
    worker = await worker_client(server, "w1")
    yield worker
    await worker.close()


async def listed(server: RunningServer, **params: Any) -> list[dict[str, Any]]:
    async with await server.admin() as admin:
        response = await admin.get("/api/model-files", params=params)
    assert response.status_code == 200, response.text
    files: list[dict[str, Any]] = response.json()
    return files


class Recorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, percent: float) -> None:
        self.calls.append(percent)


async def test_instances_asking_at_once_share_one_download(
    server: RunningServer, client: ServerClient, hub: MimicHub, tmp_path: Path
) -> None:
    files = ModelFiles(tmp_path / "data", [], client)
    first, second = Recorder(), Recorder()

    paths = await asyncio.gather(files.path_for(HF_MODEL, first), files.path_for(HF_MODEL, second))

    expected = tmp_path / "data" / "models" / "huggingface" / "org/tiny" / "tiny-Q4_0.gguf"
    assert paths == [expected, expected]
    assert expected.read_bytes() == (tmp_path / "hub" / "tiny" / "tiny-Q4_0.gguf").read_bytes()
    assert len(hub.downloads("tiny-Q4_0.gguf")) == 1
    assert first.calls and second.calls  # both instances showed the download
    [record] = await listed(server)
    assert record["worker_name"] == "w1" and record["source"] == "huggingface"
    assert record["source_key"] == "huggingface:org/tiny:*Q4*"
    assert (record["state"], record["download_progress"], record["size"]) == ("ready", 100, 1_000_000)
    assert record["resolved_paths"] == [str(expected)]

    requests_so_far, third = len(hub.hits), Recorder()
    assert await files.path_for(HF_MODEL, third) == expected
    restarted = ModelFiles(tmp_path / "data", [], client)  # a worker restart: the marker on disk is enough
    assert await restarted.path_for(HF_MODEL, third) == expected
    assert len(hub.hits) == requests_so_far and third.calls == []  # no hub request, no "downloading"


async def test_a_file_removed_from_the_cache_is_downloaded_again(
    client: ServerClient, hub: MimicHub, tmp_path: Path
) -> None:
    files = ModelFiles(tmp_path / "data", [], client)
    path = await files.path_for(OLLAMA_MODEL, Recorder())
    path.unlink()
    assert await files.path_for(OLLAMA_MODEL, Recorder()) == path
    assert path.is_file() and len(hub.downloads(path.name.replace("-", ":"))) == 2


async def test_a_failed_download_is_reported_with_its_reason(
    server: RunningServer, client: ServerClient, hub: MimicHub, tmp_path: Path
) -> None:
    files = ModelFiles(tmp_path / "data", [], client)
    missing = deployment("huggingface", huggingface_repo_id="org/absent", huggingface_filename="x.gguf")
    with pytest.raises(ModelFileError, match=re.escape("Hugging Face repository org/absent was not found")):
        await files.path_for(missing, Recorder())
    nothing = deployment("huggingface", huggingface_repo_id="org/tiny", huggingface_filename="*IQ2*")
    with pytest.raises(ModelFileError, match=re.escape("it has GGUF files: tiny-Q4_0.gguf, tiny-Q8_0.gguf")):
        await files.path_for(nothing, Recorder())

    records = {r["source_key"]: r for r in await listed(server)}
    assert records["huggingface:org/absent:x.gguf"]["state"] == "error"
    assert "org/absent was not found" in records["huggingface:org/absent:x.gguf"]["state_message"]
    assert "no GGUF file matching '*IQ2*'" in records["huggingface:org/tiny:*IQ2*"]["state_message"]


async def test_a_download_nobody_waits_for_stops_and_resumes_later(
    server: RunningServer, client: ServerClient, hub: MimicHub, tmp_path: Path
) -> None:
    files = ModelFiles(tmp_path / "data", [], client)
    hub.pause = 0.05  # 64 KiB every 50 ms: the 1 MB blob takes most of a second
    progress = Recorder()
    waiting = asyncio.create_task(files.path_for(OLLAMA_MODEL, progress))
    blobs = tmp_path / "data" / "models" / "ollama_library" / "blobs"
    while not any(p.stat().st_size for p in blobs.glob("*.partial")):
        await asyncio.sleep(0.02)
    waiting.cancel()  # the only instance that needed it was stopped
    with pytest.raises(asyncio.CancelledError):
        await waiting

    for _ in range(100):
        [record] = await listed(server)
        if record["state"] == "error":
            break
        await asyncio.sleep(0.05)
    assert record["state_message"] == "download stopped: no instance on this worker needs these files any more"
    [partial] = blobs.glob("*.partial")
    kept = partial.stat().st_size
    assert 0 < kept < 1_000_000

    hub.pause = 0
    path = await files.path_for(OLLAMA_MODEL, Recorder())
    assert path.stat().st_size == 1_000_000
    resumed = hub.downloads(path.name.replace("-", ":"))[-1]
    assert resumed.range == f"bytes={kept}-"
    [record] = await listed(server)
    assert record["state"] == "ready"


async def test_admins_list_one_workers_files(server: RunningServer, hub: MimicHub, tmp_path: Path) -> None:
    one, two = await worker_client(server, "one"), await worker_client(server, "two")
    try:
        await ModelFiles(tmp_path / "one", [], one).path_for(OLLAMA_MODEL, Recorder())
        await ModelFiles(tmp_path / "two", [], two).path_for(HF_MODEL, Recorder())
    finally:
        await one.close()
        await two.close()
    everything = await listed(server)
    assert sorted((r["worker_name"], r["source"]) for r in everything) == [
        ("one", "ollama_library"),
        ("two", "huggingface"),
    ]
    only_two = await listed(server, worker_id=everything[1]["worker_id"])
    assert [r["worker_name"] for r in only_two] == ["two"]


async def test_a_worker_report_is_validated(server: RunningServer, client: ServerClient) -> None:
    assert client.credential is not None
    async with server.client(client.credential) as worker:
        bad = await worker.put(
            "/api/model-files", json={"source": "huggingface", "source_key": "k", "state": "done", "worker_id": 7}
        )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"state", "worker_id"}
