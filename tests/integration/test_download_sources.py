"""Each hub source's real download code against the loopback mimic of the hubs' HTTP APIs.

Only the hub is imitated (``tests/support/hub_mimic.py``); ``huggingface_hub``, the ModelScope
SDK and our Ollama client run as they do in production.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.worker.downloads.huggingface import HuggingFace
from gpufleet.worker.downloads.meter import DownloadCancelled, Meter
from gpufleet.worker.downloads.modelscope import ModelScope
from gpufleet.worker.downloads.ollama import Ollama, parse_name
from gpufleet.worker.downloads.selection import needed_files
from tests.support.deployments import deployment
from tests.support.hub_mimic import MimicHub, mimic_hub


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[MimicHub]:
    with mimic_hub() as running:
        for variable in ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "OLLAMA_REGISTRY"):
            monkeypatch.setenv(variable, running.url)
        yield running


def blob(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def split_repo(root: Path) -> Path:
    for index in (1, 2, 3):
        blob(root / "q4" / f"tiny-Q4_K_M-{index:05d}-of-00003.gguf", 40_000 + index)
    blob(root / "tiny-Q8_0.gguf", 50_000)
    (root / "README.md").write_text("a model")
    return root


def fetch(plan_fetch: object, sizes: dict[str, int]) -> Meter:
    meter = Meter(sizes)
    plan_fetch(meter)  # type: ignore[operator]
    return meter


# --- choosing files ------------------------------------------------------------------------------
def test_a_glob_picks_the_first_shard_and_brings_the_others() -> None:
    names = ["README.md", "a-Q8_0.gguf", "b/a-Q4-00002-of-00002.gguf", "b/a-Q4-00001-of-00002.gguf"]
    assert needed_files(names, "*Q4*", "repo") == ["b/a-Q4-00001-of-00002.gguf", "b/a-Q4-00002-of-00002.gguf"]
    assert needed_files(names, "a-Q8_0.gguf", "repo") == ["a-Q8_0.gguf"]
    assert needed_files(names, None, "repo") == ["a-Q8_0.gguf"]


def test_no_match_lists_what_the_repository_has() -> None:
    with pytest.raises(ModelFileError) as error:
        needed_files(["README.md", "a-Q8_0.gguf"], "*Q4_K_M*", "Hugging Face repository org/x")
    assert str(error.value) == (
        "no GGUF file matching '*Q4_K_M*' in Hugging Face repository org/x; it has GGUF files: a-Q8_0.gguf"
    )
    with pytest.raises(ModelFileError, match=re.escape("it has no GGUF file at all, only: README.md, config.json")):
        needed_files(["config.json", "README.md"], None, "repo")


def test_a_missing_shard_is_named() -> None:
    with pytest.raises(ModelFileError, match=re.escape("split into 3 files but repo lacks a-00003-of-00003.gguf")):
        needed_files(["a-00001-of-00003.gguf", "a-00002-of-00003.gguf"], None, "repo")


# --- Hugging Face --------------------------------------------------------------------------------
def test_hugging_face_downloads_every_shard_of_a_split_model(hub: MimicHub, tmp_path: Path) -> None:
    hub.huggingface("org/tiny", split_repo(tmp_path / "hub" / "tiny"))
    source = HuggingFace(tmp_path / "cache", token=None)
    model = deployment("huggingface", huggingface_repo_id="org/tiny", huggingface_filename="*Q4_K_M*.gguf")

    plan = source.plan(model)
    meter = fetch(plan.fetch, plan.sizes)

    names = [f"q4/tiny-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert list(plan.sizes) == names and plan.size == 3 * 40_000 + 6
    assert plan.paths == tuple(tmp_path / "cache" / "org/tiny" / name for name in names)
    for name, path in zip(names, plan.paths, strict=True):
        assert path.read_bytes() == (tmp_path / "hub" / "tiny" / name).read_bytes()
    assert meter.percent == 100
    assert sorted(h.path.rsplit("/", 1)[-1] for h in hub.downloads(".gguf")) == [n.rsplit("/", 1)[-1] for n in names]
    assert not hub.downloads("tiny-Q8_0.gguf")  # only what the glob asked for

    again = source.plan(model)  # a second download of the same files: listed, never fetched again
    fetch(again.fetch, again.sizes)
    assert len(hub.downloads(".gguf")) == 3


def test_hugging_face_errors_name_the_repository_and_what_it_has(hub: MimicHub, tmp_path: Path) -> None:
    hub.huggingface("org/tiny", split_repo(tmp_path / "hub" / "tiny"))
    source = HuggingFace(tmp_path / "cache", token=None)

    with pytest.raises(ModelFileError) as missing_repo:
        source.plan(deployment("huggingface", huggingface_repo_id="org/absent"))
    assert str(missing_repo.value).startswith(f"Hugging Face repository org/absent was not found at {hub.url}")

    with pytest.raises(ModelFileError) as no_match:
        source.plan(deployment("huggingface", huggingface_repo_id="org/tiny", huggingface_filename="*IQ2*"))
    assert "no GGUF file matching '*IQ2*' in Hugging Face repository org/tiny" in str(no_match.value)
    assert "tiny-Q8_0.gguf" in str(no_match.value)

    plan = source.plan(deployment("huggingface", huggingface_repo_id="org/tiny", huggingface_filename="tiny-Q8_0.gguf"))
    (tmp_path / "hub" / "tiny" / "tiny-Q8_0.gguf").unlink()  # gone between listing and download: a 404
    with pytest.raises(ModelFileError) as gone:
        fetch(plan.fetch, plan.sizes)
    assert str(gone.value) == f"file tiny-Q8_0.gguf was not found in Hugging Face repository org/tiny at {hub.url}"

    with pytest.raises(ModelFileError, match=re.escape("is not of the form OWNER/NAME")):
        source.plan(deployment("huggingface", huggingface_repo_id="../../etc"))


def test_a_cancelled_hugging_face_download_stops(hub: MimicHub, tmp_path: Path) -> None:
    hub.huggingface("org/tiny", split_repo(tmp_path / "hub" / "tiny"))
    plan = HuggingFace(tmp_path / "cache", token=None).plan(
        deployment("huggingface", huggingface_repo_id="org/tiny", huggingface_filename="tiny-Q8_0.gguf")
    )
    meter = Meter(plan.sizes)
    meter.cancel()
    with pytest.raises(DownloadCancelled):
        plan.fetch(meter)
    assert not plan.paths[0].exists()


# --- ModelScope ----------------------------------------------------------------------------------
def test_modelscope_downloads_the_chosen_files(hub: MimicHub, tmp_path: Path) -> None:
    hub.modelscope("org/tiny", split_repo(tmp_path / "hub" / "tiny"))
    source = ModelScope(tmp_path / "cache")

    plan = source.plan(deployment("modelscope", modelscope_model_id="org/tiny", modelscope_file_path="*Q4_K_M*"))
    meter = fetch(plan.fetch, plan.sizes)

    assert [p.name for p in plan.paths] == [f"tiny-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    for name, path in zip(plan.sizes, plan.paths, strict=True):
        assert path.read_bytes() == (tmp_path / "hub" / "tiny" / name).read_bytes()
    assert meter.percent == 100
    assert len(hub.downloads("/repo")) == 3
    assert (tmp_path / "cache" / ".sdk").is_dir()  # the SDK's own state stays under the cache

    again = source.plan(deployment("modelscope", modelscope_model_id="org/tiny", modelscope_file_path="*Q4_K_M*"))
    fetch(again.fetch, again.sizes)
    assert len(hub.downloads("/repo")) == 3


def test_modelscope_errors_name_the_repository(hub: MimicHub, tmp_path: Path) -> None:
    hub.modelscope("org/tiny", split_repo(tmp_path / "hub" / "tiny"))
    source = ModelScope(tmp_path / "cache")
    with pytest.raises(ModelFileError, match=re.escape(f"ModelScope repository org/absent was not found at {hub.url}")):
        source.plan(deployment("modelscope", modelscope_model_id="org/absent"))
    with pytest.raises(
        ModelFileError, match=re.escape("no GGUF file matching 'x.gguf' in ModelScope repository org/tiny")
    ):
        source.plan(deployment("modelscope", modelscope_model_id="org/tiny", modelscope_file_path="x.gguf"))


# --- Ollama --------------------------------------------------------------------------------------
def test_ollama_names() -> None:
    assert parse_name("llama3") == ("library/llama3", "latest")
    assert parse_name("llama3.2:1b-instruct-q4_K_M") == ("library/llama3.2", "1b-instruct-q4_K_M")
    assert parse_name("someone/model:v1") == ("someone/model", "v1")
    with pytest.raises(ModelFileError, match=re.escape("not of the form")):
        parse_name("../x")


def test_ollama_resumes_after_the_connection_is_cut(hub: MimicHub, tmp_path: Path) -> None:
    gguf = blob(tmp_path / "tiny.gguf", 300_000)
    digest = hub.ollama("tiny:q4", gguf)
    hub.cut_once[digest] = 120_000  # the first download of the blob breaks off after 120 kB
    source = Ollama(tmp_path / "cache")

    plan = source.plan(deployment("ollama_library", ollama_library_model_name="tiny:q4"))
    meter = fetch(plan.fetch, plan.sizes)

    assert plan.paths == (tmp_path / "cache" / "blobs" / f"sha256-{digest.removeprefix('sha256:')}",)
    assert plan.paths[0].read_bytes() == gguf.read_bytes() and meter.percent == 100
    first, second = hub.downloads(digest)
    assert (first.range, first.sent) == (None, 120_000)
    assert (second.range, second.sent) == ("bytes=120000-", 180_000)
    assert not list(plan.paths[0].parent.glob("*.partial"))


def test_ollama_continues_a_partial_file_left_by_an_earlier_run(hub: MimicHub, tmp_path: Path) -> None:
    gguf = blob(tmp_path / "tiny.gguf", 200_000)
    digest = hub.ollama("tiny", gguf)
    source = Ollama(tmp_path / "cache")
    plan = source.plan(deployment("ollama_library", ollama_library_model_name="tiny"))
    partial = plan.paths[0].with_name(plan.paths[0].name + ".partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(gguf.read_bytes()[:50_000])  # what a worker killed mid-download leaves

    fetch(plan.fetch, plan.sizes)

    assert plan.paths[0].read_bytes() == gguf.read_bytes()
    [download] = hub.downloads(digest)
    assert (download.range, download.sent) == ("bytes=50000-", 150_000)

    fetch(source.plan(deployment("ollama_library", ollama_library_model_name="tiny:latest")).fetch, plan.sizes)
    assert len(hub.downloads(digest)) == 1  # in place: never fetched again


def test_ollama_rejects_bytes_that_do_not_match_the_digest(hub: MimicHub, tmp_path: Path) -> None:
    gguf = blob(tmp_path / "tiny.gguf", 10_000)
    hub.ollama("tiny", gguf)
    wrong = f"sha256:{hashlib.sha256(b'other').hexdigest()}"
    hub.blobs[wrong] = gguf
    hub.manifests["library/tiny:latest"]["layers"][0]["digest"] = wrong
    source = Ollama(tmp_path / "cache")
    plan = source.plan(deployment("ollama_library", ollama_library_model_name="tiny"))

    with pytest.raises(ModelFileError, match=re.escape(f"does not match its digest {wrong}")):
        fetch(plan.fetch, plan.sizes)
    assert not plan.paths[0].exists()
    assert not list(plan.paths[0].parent.glob("*.partial"))


def test_ollama_errors(hub: MimicHub, tmp_path: Path) -> None:
    source = Ollama(tmp_path / "cache")
    with pytest.raises(ModelFileError) as error:
        source.plan(deployment("ollama_library", ollama_library_model_name="absent:7b"))
    assert str(error.value) == f"Ollama model library/absent:7b was not found in the registry at {hub.url}"
    hub.manifests["library/nomodel:latest"] = {"schemaVersion": 2, "layers": []}
    with pytest.raises(ModelFileError, match=re.escape("has no model layer")):
        source.plan(deployment("ollama_library", ollama_library_model_name="nomodel"))
