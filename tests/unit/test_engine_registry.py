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
    assert set(ENGINES) == set(WORKER_ENGINES) == {"llama.cpp"}
    assert DEFAULT_BACKEND == "llama.cpp"
    for name, engine in engines_for(EngineOptions()).items():
        assert engine.name == name == ENGINES[name].name
        assert engine.program and engine.health_path.startswith("/")


def test_lookup_by_backend() -> None:
    assert engine_for(None) is ENGINES["llama.cpp"]
    assert engine_for(Backend.LLAMA_CPP) is ENGINES["llama.cpp"]
    assert supported_device_types("llama.cpp") == {"cuda", "rocm", "metal", "cpu"}
    assert supported_device_types("vllm") == frozenset()  # not available yet: fits nowhere
    with pytest.raises(CannotEstimate, match="backend vllm is not available") as raised:
        engine_for(Backend.VLLM)
    assert isinstance(raised.value, InvalidInput) and raised.value.status_code == 422


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
