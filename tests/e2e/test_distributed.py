"""Distributed inference over llama.cpp RPC between two real workers on loopback.

Selecting the CPUs of two workers by hand gives a ``distributed`` placement: the second worker
starts a ggml-rpc-server for the instance only, the main worker starts llama-server with
``--rpc``, and the layers are split between them. (Across hosts in separate network namespaces:
``test_distributed_netns.py``.)
"""

from __future__ import annotations

import time

import psutil
import pytest

from tests.support.engine_cluster import Engines, alive, chat

pytestmark = pytest.mark.e2e


def _rpc_servers() -> list[psutil.Process]:
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "rpc-server" in p.info["cmdline"][0] and p.status() != psutil.STATUS_ZOMBIE
    ]


def test_cpus_of_two_workers_serve_one_model_over_rpc(engines: Engines) -> None:
    # Either worker may read the model: which one is the main worker is the scheduler's choice.
    allowed = ("--allowed-model-dirs", str(engines.models))
    sub = engines.cluster.start_worker("sub", "--llama-server-path", str(engines.llama_server), *allowed)
    try:
        _serve_over_rpc(engines)
    finally:  # the cluster is shared: leave it with its one worker
        sub.stop()
        worker = engines.cluster.worker(engines.admin, "sub")
        if worker is not None:
            engines.admin.delete(f"/api/workers/{worker['id']}")


def _serve_over_rpc(engines: Engines) -> None:
    engines.cluster.wait_state(engines.admin, "sub", "ready")
    # The cluster is shared: an instance an earlier test deleted may still be stopping on main.
    deadline = time.monotonic() + 60
    while engines.admin.get("/api/model-instances").json():
        assert time.monotonic() < deadline, "instances of earlier tests are still there"
        time.sleep(0.1)
    before = {p.pid for p in _rpc_servers()}
    model = engines.deploy(
        "tiny-rpc",
        engines.models / "llama-tiny.gguf",
        gpu_selector={"device_ids": ["main:cpu:0", "sub:cpu:0"]},
    )
    [instance] = engines.wait_running(model["id"], 1)
    [part] = instance["subordinates"]
    # The main worker holds the larger share, split by free memory as last reported: main and sub report
    # the same host's memory a heartbeat apart, so either may be it. The other one lends its CPU.
    assert {instance["worker_name"], part["worker_name"]} == {"main", "sub"}
    assert part["rpc_host"] == "127.0.0.1" and part["message"] is None
    assert instance["claim"]["offload_layers"] >= 1  # layers sent to the RPC server

    rpc = psutil.Process(part["rpc_pid"])
    rpc_cmd = rpc.cmdline()
    assert rpc_cmd[rpc_cmd.index("-p") + 1] == str(part["rpc_port"])
    assert rpc_cmd[rpc_cmd.index("-d") + 1] == "CPU"
    assert rpc.pid not in before

    server_cmd = psutil.Process(instance["pid"]).cmdline()
    assert server_cmd[server_cmd.index("--rpc") + 1] == f"127.0.0.1:{part['rpc_port']}"
    answer = chat(instance, "tiny-rpc")
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] >= 1

    data_dir = "server" if instance["worker_name"] == "main" else "sub"  # the embedded worker's is the server's
    log = (engines.cluster.root / data_dir / "logs" / "instances" / f"{instance['name']}.log").read_text()
    assert f"RPC0[127.0.0.1:{part['rpc_port']}]" in log or f"RPC[127.0.0.1:{part['rpc_port']}]" in log, log[-3000:]

    # The RPC server belongs to the instance: deleting the deployment stops both processes.
    assert engines.admin.delete(f"/api/models/{model['id']}").status_code == 204
    deadline = time.monotonic() + 20
    while (alive(rpc.pid) or alive(instance["pid"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(rpc.pid) and not alive(instance["pid"])
