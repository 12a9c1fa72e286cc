"""Deployments from hubs really run: the worker downloads the GGUF, then llama-server serves it.

A ``gpufleet start`` whose ``HF_ENDPOINT`` and ``OLLAMA_REGISTRY`` point at the loopback hub
mimic (the only thing imitated); the server estimates from the remote header, the embedded worker
downloads with the real hub clients, and the instance goes downloading → starting → running.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from testkit.synthetic import preset, write_model
from tests.support.engine_cluster import Engines, chat, start_engines
from tests.support.hub_mimic import MimicHub, mimic_hub
from tests.support.processes import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MimicHub]:
    repo = tmp_path_factory.mktemp("hub") / "tiny"
    write_model(repo / "llama-tiny-F16.gguf", preset("llama-tiny"))
    (repo / "README.md").write_text("a tiny model")
    with mimic_hub() as running:
        running.huggingface("org/tiny-GGUF", repo)
        running.ollama("tiny:f16", repo / "llama-tiny-F16.gguf")
        running.ollama("broken", repo / "llama-tiny-F16.gguf")  # then its manifest lies about the digest:
        wrong = f"sha256:{hashlib.sha256(b'something else').hexdigest()}"
        running.blobs[wrong] = repo / "llama-tiny-F16.gguf"
        running.manifests["library/broken:latest"]["layers"][0]["digest"] = wrong
        yield running


@pytest.fixture(scope="module")
def cluster(hub: MimicHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    endpoints = {"HF_ENDPOINT": hub.url, "OLLAMA_REGISTRY": hub.url, "MODELSCOPE_ENDPOINT": hub.url}
    yield from start_engines(tmp_path_factory, env=endpoints)


def deploy(cluster: Engines, name: str, **source: Any) -> dict[str, Any]:
    created = cluster.admin.post("/api/models", json={"name": name, "cpu_offloading": True, **source})
    assert created.status_code == 201, created.text
    model: dict[str, Any] = created.json()
    return model


def wait_cli(cluster: Engines, name: str) -> Any:
    key = cluster.admin.post("/api/api-keys", json={"name": f"wait-{name}"}).json()["key"]
    return run_cli(["models", "wait", name, "--server", cluster.cluster.url, "--api-key", key], timeout=90)


def test_a_hugging_face_model_is_downloaded_once_and_runs(cluster: Engines, hub: MimicHub) -> None:
    source = {"source": "huggingface", "huggingface_repo_id": "org/tiny-GGUF", "huggingface_filename": "*F16*"}
    first = deploy(cluster, "hf-tiny", **source)
    waited = wait_cli(cluster, "hf-tiny")
    assert waited.returncode == 0, waited.stderr
    assert "hf-tiny: 1/1 instance(s) running" in waited.stdout
    [instance] = cluster.wait_running(first["id"], 1)
    assert instance["download_progress"] is not None  # it went through "downloading"
    assert len(hub.downloads("llama-tiny-F16.gguf")) == 1
    answer = chat(instance, "hf-tiny")
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] >= 1

    [record] = [f for f in cluster.admin.get("/api/model-files").json() if f["source"] == "huggingface"]
    cached = cluster.cluster.root / "server" / "models" / "huggingface" / "org/tiny-GGUF" / "llama-tiny-F16.gguf"
    assert (record["state"], record["resolved_paths"], record["worker_name"]) == ("ready", [str(cached)], "main")

    second = deploy(cluster, "hf-tiny-again", **source)  # the same file: found in the cache
    [again] = cluster.wait_running(second["id"], 1)
    assert again["download_progress"] is None  # never "downloading"
    assert len(hub.downloads("llama-tiny-F16.gguf")) == 1  # the hub served the file once


def test_an_ollama_model_is_downloaded_and_runs(cluster: Engines, hub: MimicHub) -> None:
    model = deploy(cluster, "ollama-tiny", source="ollama_library", ollama_library_model_name="tiny:f16")
    [instance] = cluster.wait_running(model["id"], 1)
    assert instance["download_progress"] is not None
    digest = hub.manifests["library/tiny:f16"]["layers"][0]["digest"]
    assert len(hub.downloads(digest)) == 1
    assert chat(instance, "ollama-tiny").status_code == 200


def test_a_download_that_fails_is_the_instances_error(cluster: Engines) -> None:
    deploy(cluster, "ollama-broken", source="ollama_library", ollama_library_model_name="broken")
    waited = wait_cli(cluster, "ollama-broken")
    assert waited.returncode == 1, waited.stdout
    assert "does not match its digest" in waited.stderr
    assert "instance ollama-broken-" in waited.stderr

    unknown = wait_cli(cluster, "no-such-model")
    assert unknown.returncode == 2 and "no deployment named 'no-such-model'" in unknown.stderr
