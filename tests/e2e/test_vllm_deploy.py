"""A vLLM deployment through gpufleet, for real, on this machine's CPU: ``gpufleet start`` (server and
embedded worker), the tiny Hugging Face llama (``testkit.hf_model.SERVABLE``) deployed from a
``local_path`` directory with ``backend: "vllm"``, then everything a llama.cpp instance does:

running → chat through the gateway with the official ``openai`` client (plain and streamed) →
usage recorded → the instance's logs show vLLM's own output → ``POST .../restart`` → running
again with a new engine → gpufleet killed (SIGKILL) and started again: the engine is adopted (same
pid) → deleted: every process of the engine (API server, engine core, CPU worker, resource
tracker: one process group) is gone. A second test: SIGTERM to gpufleet stops them all too.

vLLM must be installed (``gpufleet engines install vllm``; ``tests/e2e/test_vllm_engine.py`` does
it): the worker would otherwise install it on first use, minutes. Slow (vLLM takes about a minute
to start a tiny model on this CPU), so marked ``vllm``: ``pytest -m vllm tests/e2e/test_vllm_deploy.py``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import psutil
import pytest

from gpufleet.worker.engines.vllm_install import detect_accelerator, find_install
from testkit.hf_model import SERVABLE, write_tiny_llama
from tests.support.gpufleet_cluster import Cluster
from tests.support.processes import GpufleetProcess

pytestmark = [pytest.mark.vllm, pytest.mark.e2e]

SERVICE_PORTS = "45500-45599"  # this module's engine ports: no other e2e test uses them
RPC_PORTS = "45600-45699"
START_DEADLINE = 240.0  # seconds for vLLM to become healthy (about 65 s here when the CPU is not shared)
HI = [{"role": "user", "content": "Say something."}]
EXACT = {"ignore_eos": True}  # random weights may end at once: generate exactly max_tokens
T = TypeVar("T")


def until(check: Callable[[], T | None], what: str, timeout: float = START_DEADLINE) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def group(pid: int) -> list[psutil.Process]:
    """Every live process of the engine's process group (its session: the worker starts it in its own)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


class Node:
    def __init__(self, root: Path) -> None:
        self.models = root / "models"
        self.directory = write_tiny_llama(self.models / "tiny-llama", SERVABLE)
        self.cluster = Cluster(root)

    def start(self) -> GpufleetProcess:
        return self.cluster.start_server(
            "--allowed-model-dirs",
            str(self.models),
            "--service-port-range",
            SERVICE_PORTS,
            "--rpc-server-port-range",
            RPC_PORTS,
        )

    def logs(self) -> str:
        return "\n".join(p.output()[-6000:] for p in self.cluster.processes)

    def running(self, admin: httpx.Client, model_id: int, other_than: int | None = None) -> dict[str, Any]:
        """The model's instance once running with an engine whose pid is not ``other_than``."""

        def check() -> dict[str, Any] | None:
            listed = admin.get("/api/model-instances", params={"model_id": model_id}).json()
            if len(listed) == 1 and listed[0]["state"] == "error" and listed[0]["restart_count"] >= 2:
                raise AssertionError(f"vLLM does not start: {listed[0]['state_message']}\n{self.logs()}")
            if len(listed) == 1 and listed[0]["state"] == "running" and listed[0]["pid"] != other_than:
                return dict(listed[0])
            return None

        try:
            return until(check, "a running vLLM instance")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    if find_install(detect_accelerator()) is None:
        pytest.skip("vLLM is not installed: run 'gpufleet engines install vllm' (or tests/e2e/test_vllm_engine.py)")
    started = Node(tmp_path)
    engines: list[int] = []
    try:
        yield started
    finally:
        for process in reversed(started.cluster.processes):
            process.kill()
        for record in (tmp_path / "server" / "engines").glob("*.json"):
            engines.append(int(record.read_text().split('"pid": ')[1].split(",")[0]))
        for pid in engines:
            for member in group(pid):
                member.kill()


def deploy(admin: httpx.Client, node: Node, name: str) -> dict[str, Any]:
    body = {
        "name": name,
        "source": "local_path",
        "local_path": str(node.directory),
        "backend": "vllm",
        "cpu_offloading": True,
        "ctx_size": 512,
    }
    created = admin.post("/api/models", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def gpt(node: Node, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{node.cluster.url}/v1",
        api_key=key,
        max_retries=0,
        http_client=httpx.Client(trust_env=False, timeout=120),
    )


def test_a_vllm_deployment_end_to_end(node: Node) -> None:
    node.start()
    with node.cluster.admin() as admin:
        model = deploy(admin, node, "tiny-vllm")
        first = node.running(admin, model["id"])
        assert first["claim"]["engine"]["tensor_parallel_size"] == 1
        engine = psutil.Process(first["pid"])
        assert "vllm.entrypoints.openai.api_server" in " ".join(engine.cmdline())
        members = group(first["pid"])
        assert len(members) >= 3, [m.cmdline() for m in members]  # API server, engine core, worker…
        workers = admin.get("/api/workers").json()
        assert workers[0]["engines"].get("vllm", "").endswith("(cpu)"), workers[0]["engines"]

        # --- the gateway, with the official client ---------------------------------------------------
        key = admin.post("/api/api-keys", json={"name": "vllm-e2e"}).json()["key"]
        client = gpt(node, key)
        answer = client.chat.completions.create(
            model="tiny-vllm", messages=HI, max_tokens=8, temperature=0, extra_body=EXACT
        )
        assert answer.model == "tiny-vllm" and answer.usage is not None
        assert answer.usage.completion_tokens == 8 and answer.usage.prompt_tokens > 0
        chunks = list(
            client.chat.completions.create(
                model="tiny-vllm", messages=HI, max_tokens=6, stream=True, temperature=0, extra_body=EXACT
            )
        )
        assert len(chunks) >= 3 and all(c.usage is None for c in chunks)  # asked for by the gateway, not passed on
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text, chunks
        rows = admin.get("/api/usage", params={"group_by": "key"}).json()
        [row] = [r for r in rows if r["api_key_name"] == "vllm-e2e"]
        assert (row["requests"], row["completion_tokens"]) == (2, 14) and row["prompt_tokens"] > 0

        # --- logs: vLLM's own output, through the API -----------------------------------------------
        logs = admin.get(f"/api/model-instances/{first['id']}/logs", params={"tail": 10_000})
        assert logs.status_code == 200, logs.text
        assert "Starting vLLM" in logs.text or "vLLM API server version" in logs.text, logs.text[-3000:]
        assert "POST /v1/chat/completions" in logs.text

        # --- restart: a new engine, the old one's processes gone -------------------------------------
        restarted = admin.post(f"/api/model-instances/{first['id']}/restart")
        assert restarted.status_code == 200, restarted.text
        second = node.running(admin, model["id"], other_than=first["pid"])
        assert not [m for m in members if m.is_running()], "the first engine's processes outlived its restart"
        members = group(second["pid"])
        assert client.chat.completions.create(model="tiny-vllm", messages=HI, max_tokens=2).choices

    # --- gpufleet killed and started again: the engine is adopted, not restarted ---------------------
    node.cluster.processes[-1].kill()
    node.start()
    with node.cluster.admin() as admin:
        until(
            lambda: admin.get(f"/api/model-instances/{second['id']}").json()["version"] > second["version"],
            "the restarted worker to report the instance",
            60,
        )
        adopted = node.running(admin, model["id"])
        assert adopted["pid"] == second["pid"]  # re-adopted by the new worker (it reported it, above)

        # --- delete: every process of the engine is gone ---------------------------------------------
        assert admin.delete(f"/api/models/{model['id']}").status_code in (200, 204)
        until(lambda: not [m for m in members if m.is_running()] or None, "the engine's processes to exit", 30)
        assert group(second["pid"]) == []


def test_sigterm_to_gpufleet_stops_every_vllm_process(node: Node) -> None:
    process = node.start()
    with node.cluster.admin() as admin:
        model = deploy(admin, node, "tiny-vllm-stop")
        running = node.running(admin, model["id"])
    members = group(running["pid"])
    assert len(members) >= 3
    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(15) == 0, node.logs()
    assert not [m for m in members if m.is_running()], [m.cmdline() for m in members if m.is_running()]
    assert group(running["pid"]) == []


def test_an_on_demand_vllm_model_is_loaded_by_a_request_and_unloaded_when_idle(node: Node) -> None:
    """As ``tests/e2e/test_on_demand.py`` for llama.cpp: nothing runs until a request comes; the request
    waits in the gateway's queue while vLLM starts (about a minute here) and is answered; idle for
    ``idle_timeout``, the instance is unloaded and every process of the engine exits."""
    node.start()
    with node.cluster.admin() as admin:
        body = {"min_replicas": 0, "max_replicas": 1, "idle_timeout": 5, "queue_timeout": int(START_DEADLINE)}
        created = admin.post(
            "/api/models",
            json={
                "name": "od-vllm",
                "source": "local_path",
                "local_path": str(node.directory),
                "cpu_offloading": True,
                "ctx_size": 512,
                **body,
            },
        )
        assert created.status_code == 201, created.text
        model = created.json()
        assert model["backend"] == "vllm" and model["replicas"] == 0
        assert admin.get("/api/model-instances", params={"model_id": model["id"]}).json() == []

        key = admin.post("/api/api-keys", json={"name": "od-vllm"}).json()["key"]
        with httpx.Client(trust_env=False, timeout=START_DEADLINE + 30) as http:
            answer = http.post(
                f"{node.cluster.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "od-vllm", "messages": HI, "max_tokens": 4, **EXACT},
            )
        assert answer.status_code == 200, f"{answer.text}\n{node.logs()}"
        assert answer.json()["usage"]["completion_tokens"] == 4
        [instance] = admin.get("/api/model-instances", params={"model_id": model["id"]}).json()
        assert instance["state"] == "running"
        members = group(instance["pid"])
        assert len(members) >= 3

        until(
            lambda: admin.get("/api/model-instances", params={"model_id": model["id"]}).json() == [] or None,
            "the idle vLLM instance to be unloaded",
            60,
        )
        until(lambda: not [m for m in members if m.is_running()] or None, "the engine's processes to exit", 30)
        events = [e["kind"] for e in reversed(admin.get(f"/api/models/{model['id']}/events").json())]
        assert events[:2] == ["load", "unload"], events
        assert admin.get(f"/api/models/{model['id']}").json()["replicas"] == 0
