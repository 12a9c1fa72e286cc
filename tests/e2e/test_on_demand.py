"""On-demand models against real llama-server engines: loaded by the first request, unloaded when
idle, evicted by priority when a worker holds one at a time, queued fairly, scaled on load.

Workers here offer their real CPU with a memory cap (``--device-inventory`` with ``"host": true``),
sized from the estimator so that exactly one tiny model fits: the engines are real, only the
memory budget is chosen by the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gpufleet.engines import engine_for
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.schemas.models import ModelSpec
from gpufleet.server.gateway.proxy import INSTANCE_HEADER
from testkit.synthetic import preset, scaled, write_model
from tests.support.engine_cluster import alive
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.gpufleet_cluster import Cluster

pytestmark = pytest.mark.e2e

TIMEOUT = 90.0  # seconds for an engine to be placed and started on a busy 2-core machine
HI = [{"role": "user", "content": "Say something."}]
ON_DEMAND = {"min_replicas": 0, "max_replicas": 1}
# Slow enough (8 layers of 512) that a long generation is still running while the test looks.
SLOW = scaled(preset("llama-tiny"), n_layer=8, n_embd=512, n_ff=1536, n_head=8, n_head_kv=4)


@dataclass
class OnDemand:
    cluster: Cluster
    admin: httpx.Client
    models: Path
    key: str

    def deploy(self, name: str, file: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "source": "local_path", "local_path": str(self.models / file), "cpu_offloading": True}
        created = self.admin.post("/api/models", json={**body, **fields})
        assert created.status_code == 201, created.text
        model: dict[str, Any] = created.json()
        return model

    def model(self, model_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.admin.get(f"/api/models/{model_id}").json()
        return found

    def instances(self, model_id: int) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.admin.get("/api/model-instances", params={"model_id": model_id}).json()
        return listed

    def events(self, model_id: int) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.admin.get(f"/api/models/{model_id}/events").json()
        return listed

    def wait(self, what: str, done: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = done()
            if result:
                return result
            time.sleep(0.1)
        logs = "\n".join(p.output()[-3000:] for p in self.cluster.processes)
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def openai(self, timeout: float = 120) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.cluster.url}/v1",
            api_key=self.key,
            max_retries=0,
            http_client=httpx.Client(trust_env=False, timeout=timeout),
        )

    def chat(self, model: str, key: str | None = None, **extra: Any) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=180) as http:
            return http.post(
                f"{self.cluster.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key or self.key}"},
                json={"model": model, "messages": HI, "max_tokens": 2, **extra},
            )

    def new_key(self, name: str) -> str:
        created = self.admin.post("/api/api-keys", json={"name": name})
        assert created.status_code == 201, created.text
        return str(created.json()["key"])


def one_model_ram(path: Path) -> int:
    """What the scheduler claims for the model on a CPU (the estimator's figure for no GPU layers)."""
    spec = ModelSpec(name="probe", source="local_path", local_path=str(path), cpu_offloading=True)
    return engine_for(None).estimator(spec).estimate(LayerPlacement(gpus=0)).ram


def capped_cpu(path: Path, memory: int) -> Path:
    path.write_text(json.dumps({"cpu": {"cores": 2, "memory": memory, "host": True, "name": "host CPU"}}))
    return path


def start(tmp_path: Path, workers: int, sized_for: str) -> Iterator[OnDemand]:
    """A server and ``workers`` workers (``main`` embedded, then ``b``…), each offering room on its CPU
    for one model like ``sized_for`` (a.gguf: a tiny one; slow.gguf: the slow one), not two."""
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    models = tmp_path / "models"
    for name in ("a", "b", "high"):
        write_model(models / f"{name}.gguf", preset("llama-tiny"))
    write_model(models / "slow.gguf", SLOW)
    memory = int(one_model_ram(models / sized_for) * 1.5)
    cluster = Cluster(tmp_path)
    engine_args = [
        "--llama-server-path",
        str(llama_server),
        "--allowed-model-dirs",
        str(models),
        "--system-reserved",
        '{"ram": 0, "vram": 0}',  # the capped memory is all gpufleet's
    ]
    cluster.start_server(
        *engine_args,
        "--device-inventory",
        str(capped_cpu(tmp_path / "main-cpu.json", memory)),
        "--service-port-range",
        "43000-43099",
        env={"GPUFLEET_ENGINE_RESTART_BACKOFF": "0.5", "GPUFLEET_GATEWAY_TIMEOUT": "30"},
    )
    for n in range(1, workers):
        name = chr(ord("a") + n)
        inventory = capped_cpu(tmp_path / f"{name}-cpu.json", memory)
        ports = f"{43000 + 100 * n}-{43099 + 100 * n}"  # two workers on one machine must not race for ports
        cluster.start_worker(name, *engine_args, "--device-inventory", str(inventory), "--service-port-range", ports)
    admin = cluster.admin()
    try:
        for n in range(workers):
            cluster.wait_state(admin, "main" if n == 0 else chr(ord("a") + n), "ready", timeout=60)
        created = admin.post("/api/api-keys", json={"name": "on-demand"})
        assert created.status_code == 201, created.text
        yield OnDemand(cluster, admin, models, str(created.json()["key"]))
    finally:
        admin.close()
        for process in reversed(cluster.processes):
            process.kill()
        for record in tmp_path.glob("*/engines/*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
                os.kill(int(json.loads(record.read_text())["pid"]), signal.SIGKILL)


@pytest.fixture
def one_at_a_time(tmp_path: Path) -> Iterator[OnDemand]:
    """One worker (the embedded one) with room for one tiny model, not two."""
    yield from start(tmp_path, workers=1, sized_for="a.gguf")


@pytest.fixture
def one_slow(tmp_path: Path) -> Iterator[OnDemand]:
    """One worker with room for the slow model."""
    yield from start(tmp_path, workers=1, sized_for="slow.gguf")


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[OnDemand]:
    """Two workers, each with room for one slow model, not two."""
    yield from start(tmp_path, workers=2, sized_for="slow.gguf")


def running(od: OnDemand, model_id: int) -> list[dict[str, Any]]:
    return [i for i in od.instances(model_id) if i["state"] == "running"]


def test_loaded_by_the_first_request_unloaded_when_idle_and_loaded_again(one_at_a_time: OnDemand) -> None:
    od = one_at_a_time
    model = od.deploy("od-chat", "a.gguf", **ON_DEMAND, idle_timeout=5)
    assert model["replicas"] == 0 and model["min_replicas"] == 0 and model["idle_timeout"] == 5
    assert od.instances(model["id"]) == []  # nothing is loaded before it is called
    gpt = od.openai()
    assert "od-chat" in [m.id for m in gpt.models.list().data]  # listed although not loaded

    answer = gpt.chat.completions.with_raw_response.create(model="od-chat", messages=HI, max_tokens=4)
    assert answer.http_response.status_code == 200 and answer.parse().usage is not None
    [instance] = running(od, model["id"])
    assert answer.http_response.headers[INSTANCE_HEADER] == instance["name"]
    last_request = time.monotonic()
    shown = od.wait("the request's time to be written (each second)", lambda: od.model(model["id"])["last_request_at"])
    shown = od.model(model["id"])
    assert shown["running_replicas"] == 1 and shown["replicas"] == 1

    od.wait("the idle instance to be unloaded", lambda: od.instances(model["id"]) == [], timeout=30)
    unloaded_after = time.monotonic() - last_request
    assert 5 <= unloaded_after <= 12, f"unloaded {unloaded_after:.1f} s after the last request (idle_timeout 5)"
    od.wait("its engine process to exit", lambda: not alive(instance["pid"]), timeout=10)
    shown = od.model(model["id"])
    assert shown["replicas"] == 0 and shown["running_replicas"] == 0  # still deployed, nothing loaded

    again = od.chat("od-chat")  # a second request loads it again
    assert again.status_code == 200, again.text
    kinds = [e["kind"] for e in reversed(od.events(model["id"]))]
    assert kinds[:3] == ["load", "unload", "load"], kinds


def test_calling_one_model_evicts_the_other_and_priority_is_respected(one_at_a_time: OnDemand) -> None:
    od = one_at_a_time
    a = od.deploy("od-a", "a.gguf", **ON_DEMAND)
    b = od.deploy("od-b", "b.gguf", **ON_DEMAND, queue_timeout=8)
    high = od.deploy("od-high", "high.gguf", **ON_DEMAND, priority=5)

    assert od.chat("od-a").status_code == 200
    [a_instance] = running(od, a["id"])
    answer = od.chat("od-b")  # no room for both: a (idle, same priority) makes room
    assert answer.status_code == 200, answer.text
    assert running(od, a["id"]) == [] and od.model(a["id"])["replicas"] == 0
    assert not alive(a_instance["pid"])
    [evicted] = [e for e in od.events(a["id"]) if e["kind"] == "evicted"]
    assert "od-b" in evicted["message"], evicted  # says who evicted it
    [evict] = [e for e in od.events(b["id"]) if e["kind"] == "evict"]
    assert a_instance["name"] in evict["message"], evict  # and whom the new one evicted

    back = od.chat("od-a")  # and back: b is evicted for a
    assert back.status_code == 200, f"{back.text}\n{od.instances(a['id'])}\n{od.instances(b['id'])}"
    assert running(od, b["id"]) == []
    assert od.chat("od-high").status_code == 200  # the higher priority evicts a
    assert running(od, a["id"]) == []

    started = time.monotonic()
    refused = od.chat("od-b")  # b may not evict a higher priority: it waits queue_timeout, then 503
    waited = time.monotonic() - started
    assert refused.status_code == 503, refused.text
    assert 8 <= waited < 20 and int(refused.headers["Retry-After"]) >= 1
    message = refused.json()["error"]["message"]
    assert "queue_timeout" in message and "priority" in message, message
    assert len(running(od, high["id"])) == 1  # never evicted for a lower priority


def hold_a_slot(od: OnDemand, model: str, key: str | None = None) -> contextlib.AbstractContextManager[str]:
    """A streamed generation holding one slot of ``model`` until the block ends; yields the instance.

    Once the generation has begun, its engine is frozen (SIGSTOP) until the block ends: the request
    stays in flight however fast the machine generates (an idle machine writes 1500 tokens of the
    slow model in about two seconds, which let a "held" slot free itself while the test looked).
    The worker only watches that the process exists, so a frozen engine still counts as running."""

    @contextlib.contextmanager
    def held() -> Iterator[str]:
        body = {"model": model, "messages": HI, "max_tokens": 1500, "stream": True, "ignore_eos": True}
        headers = {"Authorization": f"Bearer {key or od.key}"}
        with (
            httpx.Client(base_url=od.cluster.url, headers=headers, timeout=120, trust_env=False) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as streaming,
        ):
            assert streaming.status_code == 200
            lines = streaming.iter_lines()  # kept: a discarded iterator would close the stream
            next(lines)  # the generation has begun
            name = streaming.headers[INSTANCE_HEADER]
            [engine] = [i["pid"] for i in od.admin.get("/api/model-instances").json() if i["name"] == name]
            os.kill(engine, signal.SIGSTOP)
            try:
                yield name
            finally:
                os.kill(engine, signal.SIGCONT)

    return held()


class Requests:
    """Requests sent from threads, each result recorded with the order it finished in."""

    def __init__(self, od: OnDemand) -> None:
        self.od = od
        self.done: list[tuple[str, int]] = []
        self.threads: list[threading.Thread] = []

    def send(self, name: str, model: str, key: str | None = None) -> None:
        def run() -> None:
            # 16 tokens of the slow model: answers a good fraction of a second apart, so the order
            # they finish in here is the order the one slot served them
            self.done.append((name, self.od.chat(model, key, max_tokens=16, ignore_eos=True).status_code))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> list[tuple[str, int]]:
        for thread in self.threads:
            thread.join(timeout=120)
        return self.done


def queued(od: OnDemand, model_id: int, count: int) -> None:
    od.wait(f"{count} queued request(s)", lambda: od.model(model_id)["queued_requests"] == count, timeout=30)


def test_one_request_per_instance_the_rest_wait_in_order_and_a_full_line_gets_429(one_slow: OnDemand) -> None:
    od = one_slow
    model = od.deploy("od-queue", "slow.gguf", replicas=1, max_concurrent_requests=1, max_queue=2)
    od.wait("the instance to run", lambda: running(od, model["id"]))
    requests = Requests(od)
    with hold_a_slot(od, "od-queue"):
        requests.send("second", "od-queue")
        queued(od, model["id"], 1)
        requests.send("third", "od-queue")
        queued(od, model["id"], 2)
        full = od.chat("od-queue")  # max_queue 2 reached
        assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1, full.text
        assert "max_queue" in full.json()["error"]["message"]
    assert requests.join() == [("second", 200), ("third", 200)]  # all served, first come first served


def test_two_keys_with_bursts_are_served_in_turn(one_slow: OnDemand) -> None:
    od = one_slow
    model = od.deploy("od-fair", "slow.gguf", replicas=1, max_concurrent_requests=1)
    od.wait("the instance to run", lambda: running(od, model["id"]))
    other = od.new_key("other")
    requests = Requests(od)
    with hold_a_slot(od, "od-fair"):
        for n in range(3):  # the first key's burst arrives first ...
            requests.send(f"first-{n}", "od-fair")
            queued(od, model["id"], n + 1)
        for n in range(2):  # ... then the other key's
            requests.send(f"other-{n}", "od-fair", other)
            queued(od, model["id"], n + 4)
    order = [name for name, status in requests.join() if status == 200]
    assert order == ["first-0", "other-0", "first-1", "other-1", "first-2"], order


def test_queueing_brings_a_second_replica_up_on_the_other_worker_and_idleness_takes_it_down(
    two_workers: OnDemand,
) -> None:
    od = two_workers
    model = od.deploy(
        "od-scale", "slow.gguf", min_replicas=1, max_replicas=2, idle_timeout=5, max_concurrent_requests=1
    )
    [first] = od.wait("the first replica to run", lambda: running(od, model["id"]))
    requests = Requests(od)
    with hold_a_slot(od, "od-scale") as busy:
        assert busy == first["name"]
        requests.send("waiting", "od-scale")  # waits: the only slot is taken
        [second] = od.wait(
            "a second replica to run", lambda: [i for i in running(od, model["id"]) if i["id"] != first["id"]]
        )
        assert second["worker_name"] != first["worker_name"]  # each worker holds one
        assert requests.join() == [("waiting", 200)]  # served by the new replica while the first is busy
    ups = [e for e in od.events(model["id"]) if e["kind"] == "scale_up"]
    assert len(ups) == 1 and "waited" in ups[0]["message"], ups
    od.wait("the extra replica to be removed when idle", lambda: len(od.instances(model["id"])) == 1, timeout=40)
    assert od.model(model["id"])["replicas"] == 1  # never below min_replicas
    assert od.events(model["id"])[0]["kind"] == "scale_down"


def test_a_client_that_gives_up_leaves_the_queue_at_once(one_slow: OnDemand) -> None:
    od = one_slow
    model = od.deploy("od-gone", "slow.gguf", replicas=1, max_concurrent_requests=1)
    od.wait("the instance to run", lambda: running(od, model["id"]))
    with hold_a_slot(od, "od-gone"), httpx.Client(trust_env=False, timeout=1.0) as impatient:
        with pytest.raises(httpx.ReadTimeout):  # waits in the queue; the client closes after 1 s
            impatient.post(
                f"{od.cluster.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {od.key}"},
                json={"model": "od-gone", "messages": HI, "max_tokens": 2},
            )
        gave_up = time.monotonic()
        queued(od, model["id"], 0)  # gone from the queue while the slot is still held
        assert time.monotonic() - gave_up < 5
    assert od.chat("od-gone").status_code == 200  # and the slot it never got is free for others
