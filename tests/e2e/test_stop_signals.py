"""Stopping ``gpufleet start`` (server + embedded worker) with a real llama-server serving a model.

- Ctrl-C (SIGINT) or SIGTERM: gpufleet exits (cleanly, code 0) within 10 s and takes the engine
  with it: its pid is gone, its port free, its adoption record removed.
- With ``--keep-engines``: gpufleet exits within 10 s and the engine keeps serving; the next start
  re-adopts it (same pid).
- SIGKILL: nothing can be done; the engine keeps serving and the next start re-adopts it.

Each test kills whatever engine it leaves, pass or fail.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.synthetic import preset, write_model
from tests.support.engine_cluster import alive, kill_engines
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.gpufleet_cluster import Cluster
from tests.support.processes import GpufleetProcess

STOP_WITHIN = 10.0  # seconds, the promise of ``gpufleet start``
ENGINE_TIMEOUT = 90.0
SERVICE_PORTS = "44000-44099"  # this module's engine ports: no other e2e test uses them
RPC_PORTS = "44100-44199"


class Node:
    """One data dir run by ``gpufleet start`` again and again, with a tiny model deployed on it."""

    def __init__(self, root: Path, llama_server: Path) -> None:
        self.models = root / "models"
        write_model(self.models / "llama-tiny.gguf", preset("llama-tiny"))
        self.cluster = Cluster(root)
        self.llama_server = llama_server
        self.records = root / "server" / "engines"

    def start(self, *extra: str) -> GpufleetProcess:
        return self.cluster.start_server(
            "--llama-server-path",
            str(self.llama_server),
            "--allowed-model-dirs",
            str(self.models),
            "--service-port-range",
            SERVICE_PORTS,
            "--rpc-server-port-range",
            RPC_PORTS,
            *extra,
        )

    def deploy(self, name: str) -> dict[str, Any]:
        body = {
            "name": name,
            "source": "local_path",
            "local_path": str(self.models / "llama-tiny.gguf"),
            "cpu_offloading": True,
        }
        with self.cluster.admin() as admin:
            created = admin.post("/api/models", json=body)
            assert created.status_code == 201, created.text
            model: dict[str, Any] = created.json()
        return model

    def running(self, model: dict[str, Any], newer_than: int = -1) -> dict[str, Any]:
        """The model's one instance once ``running`` at a version above ``newer_than`` (a report of the
        worker started last: it adopted or started the engine), waiting for it."""
        deadline = time.monotonic() + ENGINE_TIMEOUT
        listed: list[dict[str, Any]] = []
        with self.cluster.admin() as admin:
            while time.monotonic() < deadline:
                listed = admin.get("/api/model-instances", params={"model_id": model["id"]}).json()
                if len(listed) == 1 and listed[0]["state"] == "running" and listed[0]["version"] > newer_than:
                    return listed[0]
                time.sleep(0.1)
        logs = self.cluster.processes[-1].output()[-4000:]
        raise AssertionError(f"no running instance of {model['name']} (newer than {newer_than}): {listed}\n{logs}")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    started = Node(tmp_path, llama_server)
    try:
        yield started
    finally:
        for process in reversed(started.cluster.processes):
            process.kill()
        kill_engines(tmp_path)


def stop_with(process: GpufleetProcess, signum: signal.Signals) -> float:
    """Send ``signum``; assert gpufleet exits cleanly within ``STOP_WITHIN`` seconds; return how long it took."""
    assert process.process is not None
    sent = time.monotonic()
    process.process.send_signal(signum)
    try:
        code = process.process.wait(STOP_WITHIN)
    except subprocess.TimeoutExpired as exc:
        process.kill()
        raise AssertionError(
            f"gpufleet still running {STOP_WITHIN}s after {signum.name}:\n{process.output()[-4000:]}"
        ) from exc
    took = time.monotonic() - sent
    # 0: the graceful stop finished by itself (the forced stop at the deadline exits with 128 + signal)
    assert code == 0, f"exit code {code} after {signum.name}:\n{process.output()[-4000:]}"
    return took


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True


def health(instance: dict[str, Any]) -> int:
    return httpx.get(f"http://127.0.0.1:{instance['port']}/health", timeout=5, trust_env=False).status_code


def test_ctrl_c_stops_gpufleet_and_its_engine_within_10_seconds(node: Node) -> None:
    process = node.start()
    instance = node.running(node.deploy("sigint"))
    assert alive(instance["pid"]) and not port_free(instance["port"])

    took = stop_with(process, signal.SIGINT)

    print(f"SIGINT: gpufleet stopped in {took:.2f}s")
    assert not alive(instance["pid"]), "the engine outlived gpufleet"
    assert port_free(instance["port"])
    assert not list(node.records.glob("*.json")), "a stopped engine is still recorded for adoption"
    assert "SIGINT: stopping" in process.output()


def test_keep_engines_and_sigkill_leave_the_engine_serving_and_the_next_start_adopts_it(node: Node) -> None:
    process = node.start("--keep-engines")
    model = node.deploy("kept")
    first = node.running(model)

    took = stop_with(process, signal.SIGTERM)
    print(f"SIGTERM --keep-engines: gpufleet stopped in {took:.2f}s")
    assert alive(first["pid"]) and health(first) == 200

    process = node.start()
    adopted = node.running(model, newer_than=first["version"])
    assert (adopted["pid"], adopted["port"]) == (first["pid"], first["port"])

    process.kill()  # SIGKILL: the engine is not told anything
    assert alive(first["pid"]) and health(first) == 200

    process = node.start()
    again = node.running(model, newer_than=adopted["version"])
    assert (again["pid"], again["port"]) == (first["pid"], first["port"])

    took = stop_with(process, signal.SIGTERM)  # without --keep-engines: the engine goes too
    print(f"SIGTERM: gpufleet stopped in {took:.2f}s")
    assert not alive(first["pid"]) and port_free(first["port"])
    assert not list(node.records.glob("*.json"))
