"""Engines of one worker never share a port, and co-located CPU engines share the cores (finding 11)."""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.model_info import model_info
from gpufleet.schemas.instances import InstancePublic
from gpufleet.server.services.reschedule import due_at
from gpufleet.worker.client import ServerClient
from gpufleet.worker.engine_share import cpu_share, ports_of_others
from gpufleet.worker.engines.binaries import LlamaCppBinaries
from gpufleet.worker.engines.llama_cpp import server_launch
from gpufleet.worker.ports import PortPool, listens_on
from gpufleet.worker.supervisor import Supervisor
from testkit.synthetic import preset, write_model


def test_engines_planned_at_once_get_distinct_ports() -> None:
    """Planning runs in threads: 16 at once, released at the same moment, never share a port."""
    pool = PortPool(range(43000, 43100), "127.0.0.1")
    start = threading.Barrier(16)
    got: list[int] = []

    def plan() -> None:
        start.wait()
        got.append(pool.acquire())

    threads = [threading.Thread(target=plan) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 16 and len(set(got)) == 16


def test_ports_listed_for_other_instances_and_bound_ports_are_skipped() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        pool = PortPool(range(busy, busy + 3), "127.0.0.1")
        assert pool.acquire(avoid={busy + 1}) == busy + 2  # busy is bound, busy + 1 promised elsewhere
        assert listens_on(os.getpid(), busy) is True
        assert listens_on(os.getpid(), busy + 2) is False


def _launch(tmp_path: Path, threads: int | None, parameters: list[str]) -> list[str]:
    info = model_info(read_model(write_model(tmp_path / "llama.gguf", preset("llama-tiny"), sparse=True)))
    launch = server_launch(
        LlamaCppBinaries(Path("/opt/llama-server"), Path("/opt/ggml-rpc-server"), "test"),
        model_path=Path("/m/llama.gguf"),
        alias="chat",
        info=info,
        config=RunConfig(ctx_size=512),
        claim={"ram": 1},
        device_ids=[],
        host="127.0.0.1",
        port=40000,
        api_key="k",
        backend_parameters=parameters,
        threads=threads,
    )
    return launch.command


def test_a_cpu_engine_gets_its_thread_share_unless_the_deployment_sets_one(tmp_path: Path) -> None:
    command = _launch(tmp_path, 1, [])
    assert command[command.index("-t") + 1] == "1"
    mine = _launch(tmp_path, 1, ["-t", "3"])
    assert mine.count("-t") == 1 and mine[mine.index("-t") + 1] == "3"
    assert "-t" not in _launch(tmp_path, None, [])  # not a CPU engine: the engine decides


def _instance(instance_id: int, worker_id: int, devices: list[str], state: str = "running") -> InstancePublic:
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "id": instance_id,
        "name": f"i{instance_id}",
        "model_id": 1,
        "model_name": "m",
        "state": state,
        "state_message": None,
        "worker_id": worker_id,
        "worker_name": "w",
        "device_ids": devices,
        "port": 40000 + instance_id,
        "pid": None,
        "claim": None,
        "subordinates": [],
        "restart_count": 0,
        "download_progress": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    return InstancePublic.model_validate(data)


async def test_co_located_cpu_engines_share_the_cores(tmp_path: Path) -> None:
    supervisor = Supervisor(
        ServerClient(["http://127.0.0.1:1"], "t"),
        data_dir=tmp_path,
        bind_host="127.0.0.1",
        ports=range(40000, 40100),
        rpc_ports=range(41000, 41100),
        allowed_model_dirs=[tmp_path],
        engines={},
    )
    supervisor.worker_id = 7
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    for n in range(1, 37):
        supervisor.desired[n] = _instance(n, 7, ["w:cpu:0"])
    supervisor.desired[100] = _instance(100, 7, ["w:cuda:0"])  # a GPU engine takes no share
    supervisor.desired[101] = _instance(101, 8, ["x:cpu:0"])  # another worker's
    supervisor.desired[102] = _instance(102, 7, ["w:cpu:0"], state="stopping")
    assert cpu_share(supervisor.desired.values(), supervisor.worker_id) == max(1, cores // 36)
    for n in range(2, 37):
        del supervisor.desired[n]
    assert cpu_share(supervisor.desired.values(), supervisor.worker_id) == cores  # alone, it has every core
    assert ports_of_others(supervisor.desired.values(), supervisor.worker_id, 1) == {
        40100,
        40102,
    }  # its own, never another worker's


def test_the_reschedule_grace_counts_from_the_last_heartbeat_but_never_before_the_server_started() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    long_ago = start - timedelta(hours=1)
    # lost an hour before this server started: the grace still runs from the start (3 s window + 120 s)
    assert due_at(long_ago, start, 3.0, 120.0) == start + timedelta(seconds=123)
    # lost after the start: from its last heartbeat
    later = start + timedelta(minutes=5)
    assert due_at(later, start, 3.0, 0.0) == later + timedelta(seconds=3)
    assert due_at(None, start, 3.0, 10.0) == start + timedelta(seconds=13)
