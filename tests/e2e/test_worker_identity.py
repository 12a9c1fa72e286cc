"""Real ``gpufleet start`` processes renamed on the same data dir (issue 12, finding 1).

A recreated container gets a new hostname, which is the default ``--worker-name``: the worker's
credential in its data dir makes it the same worker under the new name (same id, devices), for the
embedded worker and a remote one alike. When the name is taken by another worker, the embedded
worker's refusal is logged and retried, and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from testkit.synthetic import preset, write_model
from tests.support.builders import H100, inventory
from tests.support.engine_cluster import Engines, chat
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.gpufleet_cluster import Cluster
from tests.support.processes import GpufleetProcess

pytestmark = pytest.mark.e2e


def running(process: GpufleetProcess) -> bool:
    return process.process is not None and process.process.poll() is None


def wait_output(process: GpufleetProcess, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while needle not in process.output():
        assert running(process), f"exited before saying {needle!r}:\n{process.output()[-3000:]}"
        assert time.monotonic() < deadline, f"no {needle!r} within {timeout}s:\n{process.output()[-3000:]}"
        time.sleep(0.05)
    return process.output()


def test_gpufleet_start_with_another_worker_name_renames_its_embedded_worker(cluster: Cluster, tmp_path: Path) -> None:
    gpus = inventory(tmp_path / "h100.json", [H100, H100])
    server = cluster.start_server("--device-inventory", str(gpus))
    with cluster.admin() as admin:
        before = cluster.wait_state(admin, "main", "ready")
    assert server.stop() == 0
    cluster.processes.remove(server)

    renamed = cluster.start_server("--device-inventory", str(gpus), "--worker-name", "nodeb")
    with cluster.admin() as admin:
        after = cluster.wait_state(admin, "nodeb", "ready")
        assert after["id"] == before["id"]
        assert [d["id"] for d in after["devices"]] == ["nodeb:cuda:0", "nodeb:cuda:1", "nodeb:cpu:0"]
        assert [w["name"] for w in admin.get("/api/workers").json()] == ["nodeb"]
        devices = admin.get("/api/devices").json()
        assert {d["worker_id"] for d in devices} == {before["id"]} and len(devices) == 3
    assert "UNIQUE constraint" not in renamed.output() and "rejoined as worker nodeb" in renamed.output()


def test_a_remote_worker_restarted_under_another_name_is_renamed(cluster: Cluster, tmp_path: Path) -> None:
    gpus = inventory(tmp_path / "h100.json", [H100])
    cluster.start_server("--disable-worker")
    worker = cluster.start_worker("gpu1", "--device-inventory", str(gpus))
    with cluster.admin() as admin:
        before = cluster.wait_state(admin, "gpu1", "ready")
        assert worker.stop() == 0
        cluster.processes.remove(worker)
        again = cluster.start_worker("gpu2", "--device-inventory", str(gpus), data_dir="gpu1")
        after = cluster.wait_state(admin, "gpu2", "ready")
        assert after["id"] == before["id"]
        assert [d["id"] for d in after["devices"]] == ["gpu2:cuda:0", "gpu2:cpu:0"]
        assert [w["name"] for w in admin.get("/api/workers").json()] == ["gpu2"]
    assert "renaming worker 'gpu1'" in again.output() and "rejoined as worker gpu2" in again.output()


def test_an_embedded_worker_that_cannot_join_leaves_the_server_up(cluster: Cluster, tmp_path: Path) -> None:
    gpus = inventory(tmp_path / "h100.json", [H100])
    server = cluster.start_server("--device-inventory", str(gpus))
    with cluster.admin() as admin:
        main = cluster.wait_state(admin, "main", "ready")
        other = cluster.start_worker("nodeb", "--device-inventory", str(gpus))
        taken = cluster.wait_state(admin, "nodeb", "ready")
    assert server.stop() == 0
    cluster.processes.remove(server)

    # The embedded worker would become "nodeb", which another worker is: refused, said why, retried.
    restarted = cluster.start_server("--device-inventory", str(gpus), "--worker-name", "nodeb")
    output = wait_output(restarted, "the embedded worker cannot join its server")
    assert f"cannot rename worker 'main' (id {main['id']}) to 'nodeb': another worker (id {taken['id']})" in output
    assert "same moment" not in output and "UNIQUE constraint" not in output
    with cluster.admin() as admin:  # the server still serves, and the other worker is still ready
        assert admin.get("/api/auth/me").status_code == 200
        cluster.wait_state(admin, "nodeb", "ready")
        assert running(restarted)

        # Once the name is free (the other machine deleted), the next retry renames it.
        assert other.stop() == 0
        assert admin.delete(f"/api/workers/{taken['id']}").status_code == 204
        renamed = cluster.wait_state(admin, "nodeb", "ready", timeout=75)  # its back-off is 60 s at most
        assert renamed["id"] == main["id"]
    assert restarted.stop() == 0


def test_a_renamed_worker_keeps_its_instance_serving(cluster: Cluster, tmp_path: Path) -> None:
    """With a real llama-server: the instance stays the same row, on the same worker id, and answers."""
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    models = tmp_path / "models"
    write_model(models / "llama-tiny.gguf", preset("llama-tiny"))
    flags = ("--llama-server-path", str(llama_server), "--allowed-model-dirs", str(models))
    server = cluster.start_server(*flags)
    engines = Engines(cluster, server, models, llama_server)
    pids: list[int] = []
    try:
        main = cluster.wait_state(engines.admin, "main", "ready")
        model = engines.deploy("tiny-renamed", models / "llama-tiny.gguf")
        [before] = engines.wait_running(model["id"], 1)
        pids.append(before["pid"])
        assert before["worker_name"] == "main" and before["device_ids"] == ["main:cpu:0"]
        assert server.stop() == 0
        cluster.processes.remove(server)

        engines.server = cluster.start_server(*flags, "--worker-name", "nodeb")
        assert cluster.wait_state(engines.admin, "nodeb", "ready")["id"] == main["id"]
        [after] = engines.wait(
            model["id"],
            lambda xs: len(xs) == 1 and xs[0]["state"] == "running" and xs[0]["worker_name"] == "nodeb",
            "the instance running on the renamed worker",
        )
        pids.append(after["pid"])
        assert after["id"] == before["id"] and after["worker_id"] == main["id"]
        assert after["device_ids"] == ["nodeb:cpu:0"]
        assert chat(after, "tiny-renamed").status_code == 200
        through_gateway = engines.admin.post(
            "/v1/chat/completions",
            json={"model": "tiny-renamed", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert through_gateway.status_code == 200, through_gateway.text
        assert engines.admin.delete(f"/api/models/{model['id']}").status_code == 204
        engines.wait(model["id"], lambda xs: xs == [], "the instance to be gone")
    finally:
        engines.admin.close()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
