"""The engine registries: the control plane's descriptions (``gpufleet.engines``) and the worker's
engines (``gpufleet.worker.engines``), reached by backend name, never by branching on it."""

from __future__ import annotations

import pytest

from gpufleet.common.errors import InvalidInput
from gpufleet.engines import DEFAULT_BACKEND, ENGINES, CannotEstimate, engine_for, supported_device_types
from gpufleet.engines.llama_cpp_flags import BackendParameterError
from gpufleet.schemas.models import Backend, ModelSpec
from gpufleet.worker.engines import ENGINES as WORKER_ENGINES
from gpufleet.worker.engines import EngineOptions, engines_for
from gpufleet.worker.engines.process import EngineRecord


def test_every_described_engine_can_run_on_a_worker_and_back() -> None:
    assert set(ENGINES) <= set(WORKER_ENGINES) == {"llama.cpp", "vllm"}
    assert DEFAULT_BACKEND == "llama.cpp"
    for name, engine in engines_for(EngineOptions()).items():
        assert engine.name == name
        assert name not in ENGINES or ENGINES[name].name == name  # vllm: described once the control plane is
        assert engine.program and engine.health_path.startswith("/")


def test_lookup_by_backend() -> None:
    assert engine_for(None) is ENGINES["llama.cpp"]
    assert engine_for(Backend.LLAMA_CPP) is ENGINES["llama.cpp"]
    assert supported_device_types("llama.cpp") == {"cuda", "rocm", "metal", "cpu"}
    assert engine_for(Backend.VLLM) is ENGINES["vllm"]
    assert supported_device_types("vllm") == {"cuda", "cpu"}
    assert supported_device_types("sglang") == frozenset()  # not available: fits nowhere
    with pytest.raises(CannotEstimate, match="backend sglang is not available") as raised:
        engine_for("sglang")
    assert isinstance(raised.value, InvalidInput) and raised.value.status_code == 422


def test_vllm_slots_and_parameters() -> None:
    vllm = ENGINES["vllm"]
    assert vllm.parallel_slots([]) == 128  # the smallest of vLLM's default max_num_seqs (its CPU one)
    assert vllm.parallel_slots(["--max-num-seqs", "32"]) == 32
    assert vllm.parallel_slots(["--bogus"]) == 128
    vllm.check_parameters(4096, ["--gpu-memory-utilization", "0.8", "--enforce-eager", "--kv-cache-dtype", "fp8"])
    with pytest.raises(BackendParameterError, match="--tensor-parallel-size is set by gpufleet"):
        vllm.check_parameters(None, ["--tensor-parallel-size", "2"])
    with pytest.raises(BackendParameterError, match="--max-num-seqs must be at least 1"):
        vllm.check_parameters(None, ["--max-num-seqs", "0"])


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (["-ngl", "3"], "-ngl is set by gpufleet"),
        (["--rpc=h:1"], "--rpc is set by gpufleet"),
        (["-c"], "-c needs a value"),
        (["--ubatch-size", "0"], "ubatch must be at least 1"),
    ],
)
def test_llama_cpp_refuses(parameters: list[str], message: str) -> None:
    with pytest.raises(BackendParameterError, match=message):
        ENGINES["llama.cpp"].check_parameters(None, parameters)


def test_llama_cpp_accepts_its_memory_flags_and_others() -> None:
    ENGINES["llama.cpp"].check_parameters(4096, ["--flash-attn", "on", "-np 2", "--temp=0.2", "--jinja"])


def test_an_unreadable_model_cannot_be_estimated() -> None:
    spec = ModelSpec(name="m", source="local_path", local_path="/nowhere/m.gguf")
    with pytest.raises(CannotEstimate, match=r"cannot estimate the model.s memory: local_path /nowhere/m\.gguf"):
        ENGINES["llama.cpp"].estimator(spec)


@pytest.mark.parametrize(
    ("role", "program", "health"), [("server", "llama-server", "/health"), ("rpc", "ggml-rpc-server", "")]
)
def test_records_from_before_engines_were_named_are_llama_cpp(role: str, program: str, health: str) -> None:
    # A worker upgraded while its engines run re-adopts them from records without these fields.
    record = EngineRecord(instance_id=1, role=role, pid=2, port=3, command=["x"], log="l", started_at=0.0)
    assert (record.program, record.health_path) == (program, health)
