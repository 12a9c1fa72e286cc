"""The llama-server and ggml-rpc-server commands an instance runs with, derived from its placement."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.model_info import ModelInfo, model_info
from gpufleet.worker.engines.binaries import LlamaCppBinaries
from gpufleet.worker.engines.llama_cpp import device_env, rpc_launch, server_launch, user_parameters
from gpufleet.worker.engines.process import rotate
from testkit.synthetic import preset, scaled, write_model

BINARIES = LlamaCppBinaries(Path("/opt/llama-server"), Path("/opt/ggml-rpc-server"), "test")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    path = write_model(tmp_path_factory.mktemp("m") / "llama.gguf", preset("llama-tiny"), sparse=True)
    return model_info(read_model(path))


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    shape = scaled(preset("bert-base"), n_layer=2, n_embd=64, n_ff=128, n_head=4, n_head_kv=4, n_vocab=512)
    return model_info(read_model(write_model(tmp_path_factory.mktemp("m") / "bert.gguf", shape, sparse=True)))


def _value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_command_carries_the_estimated_settings_and_the_placement(llama: ModelInfo) -> None:
    launch = server_launch(
        BINARIES,
        model_path=Path("/m/llama.gguf"),
        alias="chat",
        info=llama,
        config=RunConfig(ctx_size=1024, parallel=2),
        claim={"offload_layers": 3, "tensor_split": [0.25, 0.75]},
        device_ids=["w:cuda:1", "w:cuda:3"],
        host="0.0.0.0",
        port=40001,
        api_key="gfe_secret",
        rpc_endpoints=["10.0.0.2:41000", "10.0.0.3:41000"],
        backend_parameters=["--ctx-size", "4096", "--temp=0.2", "-np 2", "--jinja"],
    )
    command = launch.command
    assert command[0] == "/opt/llama-server"
    assert (_value(command, "-m"), _value(command, "--alias"), _value(command, "--port")) == (
        "/m/llama.gguf",
        "chat",
        "40001",
    )
    assert _value(command, "-c") == "1024"  # from the run settings, never from the raw parameters
    assert _value(command, "-np") == "2"
    assert _value(command, "-ngl") == "3"
    assert _value(command, "-ts") == "0.25,0.75"
    assert _value(command, "--rpc") == "10.0.0.2:41000,10.0.0.3:41000"
    assert _value(command, "--fit") == "off" and _value(command, "--cache-ram") == "0"
    # memory flags were folded into the run settings; the rest pass through, in order, once
    assert command.count("-c") == 1 and "--ctx-size" not in command and command.count("-np") == 1
    assert command[-3:] == ["--temp", "0.2", "--jinja"]
    assert launch.env["CUDA_VISIBLE_DEVICES"] == "1,3" and launch.env["HIP_VISIBLE_DEVICES"] == ""
    assert launch.env["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert "--embeddings" not in command
    # the engine's API key is in its environment only: a command line shows in ``ps`` to everyone
    assert launch.env["LLAMA_API_KEY"] == "gfe_secret"
    assert not any("gfe_secret" in token for token in command) and "--api-key" not in command


def test_a_cpu_placement_hides_every_gpu_and_offloads_nothing(llama: ModelInfo) -> None:
    launch = server_launch(
        BINARIES,
        model_path=Path("/m/llama.gguf"),
        alias="chat",
        info=llama,
        config=RunConfig(ctx_size=512),
        claim={"ram": 1},
        device_ids=[],
        host="127.0.0.1",
        port=40002,
        api_key="k",
    )
    assert _value(launch.command, "-ngl") == "0"
    assert "-ts" not in launch.command and "--rpc" not in launch.command
    assert launch.env["CUDA_VISIBLE_DEVICES"] == "" and launch.env["HIP_VISIBLE_DEVICES"] == ""


def test_an_embedding_model_serves_embeddings(bert: ModelInfo) -> None:
    launch = server_launch(
        BINARIES,
        model_path=Path("/m/bert.gguf"),
        alias="embed",
        info=bert,
        config=RunConfig(ctx_size=512),
        claim={},
        device_ids=[],
        host="127.0.0.1",
        port=40003,
        api_key="k",
    )
    assert "--embeddings" in launch.command


@pytest.mark.parametrize(
    ("device_ids", "expected"),
    [
        ([], {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}),
        (["w:cuda:0"], {"CUDA_VISIBLE_DEVICES": "0", "HIP_VISIBLE_DEVICES": ""}),
        (["w:rocm:2", "w:rocm:5"], {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": "2,5"}),
        # Apple's Metal device needs no pinning (one GPU per Mac)
        (["w:metal:0"], {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}),
    ],
)
def test_devices_are_pinned_through_the_environment(device_ids: list[str], expected: dict[str, str]) -> None:
    assert device_env(device_ids) == expected


@pytest.mark.parametrize(
    ("device_ids", "flags"),
    [
        (["b:cpu:0"], ["-d", "CPU", "-t", "8"]),  # a CPU part names the device and its threads
        (["b:cuda:1"], []),  # GPUs: pinned by CUDA_VISIBLE_DEVICES; the server serves what it sees
    ],
)
def test_rpc_server_command(device_ids: list[str], flags: list[str]) -> None:
    launch = rpc_launch(BINARIES, host="10.0.0.2", port=41000, device_ids=device_ids, threads=8)
    assert launch.command == ["/opt/ggml-rpc-server", "-H", "10.0.0.2", "-p", "41000", *flags]
    assert launch.env["CUDA_VISIBLE_DEVICES"] == ("1" if flags == [] else "")


def test_user_parameters_drop_only_what_the_run_settings_carry() -> None:
    assert user_parameters(["-c", "8", "--flash-attn=on", "--swa-full", "--top-k", "5", "--jinja"]) == [
        "--top-k",
        "5",
        "--jinja",
    ]
    # the load mode is read for the estimate (mmap or not) and passed on as given
    assert user_parameters(["-lm", "mlock"]) == ["-lm", "mlock"]


def test_engine_logs_are_rotated_past_their_limit(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_bytes(b"x" * 100)
    assert rotate(log, limit=100) is False and log.stat().st_size == 100
    log.write_bytes(b"y" * 101)
    assert rotate(log, limit=100) is True
    assert log.stat().st_size == 0 and (tmp_path / "engine.log.1").read_bytes() == b"y" * 101


def test_engines_do_not_inherit_gpufleet_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_TOKEN", "secret")
    monkeypatch.setenv("PATH_FOR_TEST", "kept")
    launch = rpc_launch(BINARIES, host="127.0.0.1", port=41000, device_ids=["b:cpu:0"], threads=1)
    assert "GPUFLEET_TOKEN" not in launch.env and launch.env["PATH_FOR_TEST"] == "kept"
    assert launch.env["DO_NOT_TRACK"] == "1"
