"""What a vLLM instance is given: a Hugging Face model directory, from a hub snapshot or a local path.

The hubs are the loopback mimic (``tests/support/hub_mimic.py``) serving a tiny HF llama written by
``testkit.hf_model`` plus the files a real repository carries beside it (a GGUF, PyTorch weights, a
README, a subfolder of other weights): only what vLLM loads is fetched. GGUF deployments of the
same repository keep choosing their one file (``test_download_sources``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.worker.client import ServerClient
from gpufleet.worker.downloads import LAYOUTS, ModelFiles
from gpufleet.worker.downloads.huggingface import HuggingFace
from gpufleet.worker.downloads.layout import snapshot_files
from gpufleet.worker.downloads.meter import Meter
from gpufleet.worker.downloads.modelscope import ModelScope
from testkit.hf_model import write_tiny_llama
from tests.support.builders import register_worker
from tests.support.deployments import deployment
from tests.support.hub_mimic import MimicHub, mimic_hub
from tests.support.server import RunningServer

DIRECTORY = LAYOUTS["hf_directory"]
TINY = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[MimicHub]:
    with mimic_hub() as running:
        for variable in ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT"):
            monkeypatch.setenv(variable, running.url)
        yield running


def hf_repo(root: Path) -> Path:
    """A tiny llama as a hub repository holds it, with files vLLM must not be given."""
    write_tiny_llama(root)
    (root / "README.md").write_text("a model")
    (root / "tiny-f16.gguf").write_bytes(os.urandom(1000))
    (root / "pytorch_model.bin").write_bytes(os.urandom(1000))
    (root / "original").mkdir()
    (root / "original" / "consolidated.00.pth").write_bytes(os.urandom(1000))
    (root / "original" / "params.json").write_text("{}")
    (root / "merges.txt").write_text("#version: 0.2\n")
    return root


class Recorder:
    def __init__(self) -> None:
        self.percents: list[float] = []

    async def __call__(self, percent: float) -> None:
        self.percents.append(percent)


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ServerClient]:
    async with await server.admin() as admin:
        registered = await register_worker(admin, server.token, "w1")
    worker = ServerClient([server.url], server.token)
    worker.credential = registered["credential"]
    yield worker
    await worker.close()


# --- choosing files ------------------------------------------------------------------------------
def test_the_snapshot_is_config_first_safetensors_and_tokenizer_files() -> None:
    names = [
        "README.md",
        "model-00002-of-00002.safetensors",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "model.gguf",
        "tokenizer.model",
        "vocab.txt",
        "chat_template.jinja",
        "config.json",
        "modeling_custom.py",
        "original/consolidated.00.pth",
    ]
    assert snapshot_files(names, "repo") == [
        "config.json",
        "chat_template.jinja",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.model",
        "vocab.txt",
    ]


def test_pytorch_weights_only_where_there_are_no_safetensors() -> None:
    assert snapshot_files(["config.json", "pytorch_model.bin", "x.gguf"], "repo") == [
        "config.json",
        "pytorch_model.bin",
    ]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["model.gguf", "README.md"], "repo is not a Hugging Face model directory: no config.json at its top level"),
        (["sub/config.json", "sub/model.safetensors"], "no config.json at its top level"),
        (["config.json", "model.gguf"], "repo has config.json but no weights"),
    ],
)
def test_what_is_not_a_model_directory(names: list[str], message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        snapshot_files(names, "repo")


# --- hubs ----------------------------------------------------------------------------------------
def test_hugging_face_snapshot_for_vllm(hub: MimicHub, tmp_path: Path) -> None:
    hub.huggingface("org/tiny", hf_repo(tmp_path / "hub"))
    source = HuggingFace(tmp_path / "cache", token=None)
    model = deployment("huggingface", backend="vllm", huggingface_repo_id="org/tiny")

    plan = source.plan(model, DIRECTORY)
    plan.fetch(Meter(plan.sizes))

    assert list(plan.sizes) == ["config.json", *sorted([*TINY[1:], "merges.txt"])]
    for name in [*TINY, "merges.txt"]:
        assert hub.downloads(f"/{name}"), name
    for name in ["tiny-f16.gguf", "pytorch_model.bin", "README.md", "consolidated.00.pth", "params.json"]:
        assert not hub.downloads(f"/{name}"), name  # what vLLM does not load is never fetched
    assert DIRECTORY.entry(plan.paths[0]) == tmp_path / "cache" / "org/tiny"
    for name in TINY:
        assert (tmp_path / "cache" / "org/tiny" / name).read_bytes() == (tmp_path / "hub" / name).read_bytes()
    assert source.key(model, DIRECTORY) != source.key(model)  # the GGUF of the same repo is another download


def test_modelscope_snapshot_for_vllm(hub: MimicHub, tmp_path: Path) -> None:
    hub.modelscope("org/tiny", hf_repo(tmp_path / "hub"))
    source = ModelScope(tmp_path / "cache")
    plan = source.plan(deployment("modelscope", backend="vllm", modelscope_model_id="org/tiny"), DIRECTORY)
    plan.fetch(Meter(plan.sizes))
    assert plan.paths[0].name == "config.json" and "model.safetensors" in plan.sizes
    assert not {"tiny-f16.gguf", "pytorch_model.bin", "README.md"} & set(plan.sizes)
    assert (plan.paths[0].parent / "model.safetensors").read_bytes() == (
        tmp_path / "hub" / "model.safetensors"
    ).read_bytes()


async def test_model_files_give_vllm_the_directory_and_cache_it(
    hub: MimicHub, client: ServerClient, server: RunningServer, tmp_path: Path
) -> None:
    hub.huggingface("org/tiny", hf_repo(tmp_path / "hub"))
    model = deployment("huggingface", backend="vllm", huggingface_repo_id="org/tiny")

    directory = await ModelFiles(tmp_path / "data", [], client).path_for(model, Recorder(), DIRECTORY)
    assert directory == tmp_path / "data" / "models" / "huggingface" / "org/tiny"
    assert (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()
    fetched = len(hub.downloads(".safetensors"))

    restarted = ModelFiles(tmp_path / "data", [], client)  # a worker restart: the completion marker says
    assert await restarted.path_for(model, Recorder(), DIRECTORY) == directory
    assert len(hub.downloads(".safetensors")) == fetched == 1
    async with await server.admin() as admin:
        listed = (await admin.get("/api/model-files")).json()
    assert [(f["source_key"], f["state"]) for f in listed] == [("huggingface:org/tiny:hf-directory", "ready")]


# --- local paths ---------------------------------------------------------------------------------
def test_a_local_directory_for_vllm(tmp_path: Path) -> None:
    allowed = tmp_path / "models"
    directory = write_tiny_llama(allowed / "tiny")
    assert DIRECTORY.local(str(directory), [allowed]) == directory
    assert DIRECTORY.local(str(directory / "config.json"), [allowed]) == directory
    with pytest.raises(ModelFileError, match="is outside the directories this worker allows"):
        DIRECTORY.local(str(directory), [tmp_path / "elsewhere"])
    with pytest.raises(ModelFileError, match="does not exist on this worker"):
        DIRECTORY.local(str(allowed / "absent"), [allowed])
    with pytest.raises(ModelFileError, match="is a file, not a model directory"):
        DIRECTORY.local(str(directory / "model.safetensors"), [allowed])


def test_a_local_directory_whose_weights_point_outside_is_refused(tmp_path: Path) -> None:
    outside = write_tiny_llama(tmp_path / "outside")
    allowed = tmp_path / "models"
    (allowed / "tiny").mkdir(parents=True)
    for name in TINY[:2] + TINY[3:]:  # all but the weights, copied in
        (allowed / "tiny" / name).write_bytes((outside / name).read_bytes())
    (allowed / "tiny" / "model.safetensors").symlink_to(outside / "model.safetensors")
    with pytest.raises(ModelFileError, match=r"model\.safetensors is outside the directories this worker allows"):
        DIRECTORY.local(str(allowed / "tiny"), [allowed])


def test_a_gguf_local_path_is_unchanged(tmp_path: Path) -> None:
    allowed = tmp_path / "models"
    allowed.mkdir()
    (allowed / "m.gguf").write_bytes(b"GGUF")
    assert LAYOUTS["gguf"].local(str(allowed), [allowed]) == allowed / "m.gguf"
