"""A worker lost for good: after the reschedule grace its instances run elsewhere, and nothing runs twice.

Real processes: ``gpufleet start`` (server + embedded worker ``main``) with ``--reschedule-grace 0``,
a second worker ``b``, real llama-server engines on a tiny generated GGUF. A watch stream records
every instance event with the moment it arrived, and a client calls the gateway in a loop.

1. A dead machine: ``b``'s agent and its engine are SIGKILLed. Its instance becomes ``unreachable``,
   then (grace 0) ``pending`` with a message naming the lost worker, and runs on ``main``: 2/2
   again. No gateway request that started after the loss was published failed.
2. A worker whose engine kept running (only the agent killed): its instance moves the same way;
   when ``b`` comes back (same data dir) its agent finds the engine, sees the instance is no longer
   its own, and stops it — one engine per instance.
3. A worker cut off by the network (two network namespaces): its agent and engine keep running
   unheard; the instance moves; when the link returns the same agent stops the replaced engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.synthetic import preset, write_model
from tests.support.engine_cluster import alive
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.gpufleet_cluster import Cluster
from tests.support.netns import two_hosts, unavailable_reason
from tests.support.processes import GpufleetProcess
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

TIMEOUT = 120.0  # seconds for an engine to be placed and started again on a busy 2-core machine
HI = [{"role": "user", "content": "Say something."}]


@dataclass
class Fleet:
    cluster: Cluster
    admin: httpx.Client
    worker_args: list[str]
    b: GpufleetProcess

    def instances(self, model_id: int) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.admin.get("/api/model-instances", params={"model_id": model_id}).json()
        return listed

    def wait(self, model_id: int, done: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + TIMEOUT
        listed: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            listed = self.instances(model_id)
            if done(listed):
                return listed
            time.sleep(0.1)
        logs = "\n".join(p.output()[-3000:] for p in self.cluster.processes)
        raise AssertionError(f"timed out waiting for {what}: {listed}\n{logs}")

    def restart_b(self) -> None:
        self.b = self.cluster.start_worker("b", *self.worker_args)
        self.cluster.wait_state(self.admin, "b", "ready", timeout=60)

    def b_engines(self) -> list[Path]:
        return sorted((self.cluster.root / "b" / "engines").glob("*.json"))


@dataclass
class Watch:
    """Instance events of an admin's watch stream, each with the monotonic time it arrived."""

    client: httpx.Client
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        stream = self.client.stream("GET", "/api/watch", params={"kinds": "instances"}, timeout=None)
        with contextlib.suppress(httpx.HTTPError), stream as response:
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.strip():
                    self.events.append((time.monotonic(), json.loads(line)))

    def first(self, predicate: Callable[[dict[str, Any]], bool]) -> tuple[float, dict[str, Any]] | None:
        return next(((at, e) for at, e in list(self.events) if predicate(e.get("object") or {})), None)


@dataclass
class Callers:
    """A client calling the gateway in a loop: (started, ended, status or error) per request."""

    url: str
    key: str
    results: list[tuple[float, float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(trust_env=False, timeout=30) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    answer = http.post(
                        f"{self.url}/v1/chat/completions",
                        headers={"Authorization": f"Bearer {self.key}"},
                        json={"model": "loss-chat", "messages": HI, "max_tokens": 2},
                    )
                    outcome = "ok" if answer.status_code == 200 else f"{answer.status_code}: {answer.text[:300]}"
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                self.results.append((started, time.monotonic(), outcome))


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    models = tmp_path / "models"
    write_model(models / "llama-tiny.gguf", preset("llama-tiny"))
    cluster = Cluster(tmp_path)
    engine_args = ["--llama-server-path", str(llama_server), "--allowed-model-dirs", str(models)]
    cluster.start_server(
        *engine_args,
        "--reschedule-grace",
        "0",
        "--service-port-range",
        "42000-42099",
        env={"GPUFLEET_ENGINE_RESTART_BACKOFF": "0.5", "GPUFLEET_GATEWAY_TIMEOUT": "10"},
    )
    # its own port range: two workers on one machine must not race for the same ports
    worker_args = [*engine_args, "--service-port-range", "42100-42199"]
    b = cluster.start_worker("b", *worker_args)
    admin = cluster.admin()
    try:
        cluster.wait_state(admin, "main", "ready", timeout=60)
        cluster.wait_state(admin, "b", "ready", timeout=60)
        yield Fleet(cluster, admin, worker_args, b)
    finally:
        admin.close()
        for process in reversed(cluster.processes):
            process.kill()
        for record in tmp_path.glob("*/engines/*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
                os.kill(int(json.loads(record.read_text())["pid"]), signal.SIGKILL)


def _on(listed: list[dict[str, Any]], worker: str) -> list[dict[str, Any]]:
    return [i for i in listed if i["worker_name"] == worker]


def _running(count: int, where: dict[str, int]) -> Callable[[list[dict[str, Any]]], bool]:
    def done(listed: list[dict[str, Any]]) -> bool:
        running = [i for i in listed if i["state"] == "running"]
        return len(listed) == count == len(running) and all(len(_on(running, w)) == n for w, n in where.items())

    return done


def test_a_lost_workers_instances_run_elsewhere_and_never_twice(fleet: Fleet) -> None:
    admin = fleet.admin
    created = admin.post(
        "/api/models",
        json={
            "name": "loss-chat",
            "source": "local_path",
            "local_path": str(fleet.cluster.root / "models" / "llama-tiny.gguf"),
            "cpu_offloading": True,
            "replicas": 2,
            "ctx_size": 256,
        },
    )
    assert created.status_code == 201, created.text
    model_id = created.json()["id"]
    placed = fleet.wait(model_id, _running(2, {"main": 1, "b": 1}), "one running replica on each worker")
    lost = _on(placed, "b")[0]
    key = admin.post("/api/api-keys", json={"name": "loss-key"}).json()["key"]

    watch = Watch(fleet.cluster.admin())
    callers = Callers(fleet.cluster.url, key)
    threads = [threading.Thread(target=watch.run, daemon=True), threading.Thread(target=callers.run, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while not any(outcome == "ok" for _, _, outcome in callers.results) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(outcome == "ok" for _, _, outcome in callers.results), callers.results[-5:]

        # 1. a dead machine: the agent and its engine killed at once
        fleet.b.kill()
        os.kill(lost["pid"], signal.SIGKILL)
        back = fleet.wait(model_id, _running(2, {"main": 2}), "both replicas running on main")
        assert lost["id"] in {i["id"] for i in back}  # the same instance, moved

        detected = watch.first(lambda i: i.get("id") == lost["id"] and i.get("state") == "unreachable")
        moved = watch.first(lambda i: i.get("id") == lost["id"] and i.get("state") == "pending")
        assert detected is not None and moved is not None, watch.events[-10:]
        assert "moved off worker b" in moved[1]["object"]["state_message"], moved
        deadline = time.monotonic() + 30  # keep calling for a while after the loss was published
        while sum(1 for r in list(callers.results) if r[0] > detected[0]) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        callers.stop.set()
        threads[1].join(60)
        after = [r for r in callers.results if r[0] > detected[0]]
        assert after, f"no request started after the loss was seen at {detected[0]}: {callers.results[-5:]}"
        assert all(outcome == "ok" for _, _, outcome in after), [r for r in after if r[2] != "ok"]
    finally:
        callers.stop.set()
        watch.stop.set()

    # b comes back (same data dir): its engine died with the machine, and nothing is started again
    fleet.restart_b()
    assert fleet.b_engines() == []

    # 2. a cut-off worker whose engine survives: a third replica lands on b, then b's agent is killed
    assert admin.patch(f"/api/models/{model_id}", json={"replicas": 3}).status_code == 200
    placed = fleet.wait(model_id, _running(3, {"main": 2, "b": 1}), "a third replica running on b")
    orphan = _on(placed, "b")[0]
    fleet.b.kill()
    assert alive(orphan["pid"])  # cut off, not dead: its engine keeps running
    back = fleet.wait(model_id, _running(3, {"main": 3}), "the third replica moved to main")
    moved_again = next(i for i in back if i["id"] == orphan["id"])
    assert moved_again["pid"] != orphan["pid"] and alive(moved_again["pid"])

    fleet.restart_b()  # adopts the engine it finds, then stops it: the instance is no longer its own
    deadline = time.monotonic() + 30
    while (alive(orphan["pid"]) or fleet.b_engines()) and time.monotonic() < deadline:
        time.sleep(0.1)  # stopped, then its record removed
    assert not alive(orphan["pid"]) and fleet.b_engines() == [], fleet.b.output()[-3000:]
    assert _running(3, {"main": 3})(fleet.instances(model_id))


NETNS_SERVER_PORT, NETNS_WORKER_A_PORT, NETNS_WORKER_B_PORT = 18090, 18091, 18092


def test_a_cut_off_worker_stops_the_engine_that_was_replaced_when_its_link_returns(tmp_path: Path) -> None:
    """Two hosts (network namespaces). B's link is cut: its agent and engine keep running, unheard.
    With grace 0 its instance moves to A and runs there; when the link comes back, B's agent (the
    same process, never restarted) learns the instance is no longer its own and stops that engine."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    models = tmp_path / "models"
    write_model(models / "llama-tiny.gguf", preset("llama-tiny"))
    common = ["--heartbeat-interval", "1", "--llama-server-path", str(llama_server)]
    with two_hosts() as net:
        a = GpufleetProcess(
            [
                *("--host", "0.0.0.0", "--port", str(NETNS_SERVER_PORT), "--worker-port", str(NETNS_WORKER_A_PORT)),
                *("--worker-ip", net.a_ip, "--worker-name", "a", "--data-dir", str(tmp_path / "a")),
                *("--bootstrap-password", ADMIN_PASSWORD, "--allowed-model-dirs", str(models), *common),
                *("--reschedule-grace", "0"),
            ],
            tmp_path / "a.log",
            prefix=net.exec_prefix(net.a),
        ).start()
        b: GpufleetProcess | None = None
        url = f"http://{net.a_from_test}:{NETNS_SERVER_PORT}"
        try:
            a.wait_http(f"{url}/healthz")
            token = (tmp_path / "a" / "token").read_text().strip()
            b = GpufleetProcess(
                [
                    *("--server-url", f"http://{net.a_ip}:{NETNS_SERVER_PORT}", "--token", token),
                    *("--host", net.b_ip, "--worker-port", str(NETNS_WORKER_B_PORT), "--worker-name", "b"),
                    *("--data-dir", str(tmp_path / "b"), "--allowed-model-dirs", str(models), *common),
                ],
                tmp_path / "b.log",
                prefix=net.exec_prefix(net.b),
            ).start()
            token_answer = httpx.post(
                f"{url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, trust_env=False
            )
            admin = httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {token_answer.json()['access_token']}"},
                trust_env=False,
            )

            def logs() -> str:
                return f"--- A ---\n{a.output()[-3000:]}\n--- B ---\n{b.output()[-3000:] if b else ''}"

            def until(done: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if result := done():
                        return result
                    time.sleep(0.2)
                raise AssertionError(f"timed out waiting for {what}\n{logs()}")

            def listed(model_id: int) -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = admin.get("/api/model-instances", params={"model_id": model_id}).json()
                return rows

            until(
                lambda: [w["state"] for w in admin.get("/api/workers").json()] == ["ready", "ready"],
                "workers a and b ready",
            )
            created = admin.post(
                "/api/models",
                json={
                    "name": "cut-chat",
                    "source": "local_path",
                    "local_path": str(models / "llama-tiny.gguf"),
                    "cpu_offloading": True,
                    "distributed_inference_across_workers": False,
                    "replicas": 2,
                    "ctx_size": 256,
                },
            )
            assert created.status_code == 201, created.text
            model_id = created.json()["id"]
            placed = until(
                lambda: (rows := listed(model_id)) and _running(2, {"a": 1, "b": 1})(rows) and rows,
                "one running replica on each host",
            )
            on_b = _on(placed, "b")[0]

            net.cut()
            until(lambda: _running(2, {"a": 2})(listed(model_id)), "both replicas running on a")
            assert alive(on_b["pid"])  # unheard, not dead: B's engine still runs behind the cut

            net.mend()
            until(
                lambda: not alive(on_b["pid"]) and not list((tmp_path / "b" / "engines").glob("*.json")),
                "b's agent to stop the engine of the instance that moved (and drop its record)",
            )
            assert _running(2, {"a": 2})(listed(model_id))
            admin.close()
        finally:
            for process in (b, a):
                if process is not None:
                    process.kill()
