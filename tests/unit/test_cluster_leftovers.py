"""What a worker does at start with the engines an earlier run left (``cluster_heads.end_cluster_processes``),
on real processes and records: a Ray head is ended together with its instance's server (which cannot go
on without its cluster) and a Ray node too (it holds ports its record does not list); llama.cpp's server
and RPC server, and a vLLM server without a head, are kept for adoption."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from gpufleet.worker.cluster_heads import end_cluster_processes
from gpufleet.worker.engines import engines_for
from gpufleet.worker.engines.base import EngineOptions
from gpufleet.worker.engines.process import adoptable, launch


def started(records: Path, instance_id: int, role: str, program: str, temp: Path) -> int:
    # Python ignores the arguments after -c's code: they only make the command line look like the engine's
    command = [sys.executable, "-c", "import time; time.sleep(120)", f"--temp-dir={temp}"]
    process = launch(
        records, instance_id, role, command, 40000 + instance_id, records / f"{instance_id}.log", {}, program=program
    )
    # /proc shows an empty command line for a moment after exec: wait for the real one, as a worker
    # restarting later would see it
    deadline = time.monotonic() + 10
    while psutil.Process(process.pid).cmdline() != command and time.monotonic() < deadline:
        time.sleep(0.01)
    return process.pid


def test_a_head_goes_with_its_server_and_ray_nodes_go_the_rest_stays(tmp_path: Path) -> None:
    records = tmp_path / "engines"
    temp = tmp_path / "ray-temp"
    pids = {
        (1, "cluster-head"): started(records, 1, "cluster-head", "ray", temp / "1"),
        (1, "server"): started(records, 1, "server", "vllm", temp / "s1"),
        (2, "server"): started(records, 2, "server", "vllm", temp / "s2"),  # vLLM on one worker
        (3, "rpc"): started(records, 3, "rpc", "ray", temp / "3"),  # a Ray node for another worker
        (4, "rpc"): started(records, 4, "rpc", "ggml-rpc-server", temp / "4"),
        (5, "server"): started(records, 5, "server", "llama-server", temp / "5"),
    }
    try:
        kept = end_cluster_processes(adoptable(records), engines_for(EngineOptions()), records)
        assert sorted((p.record.instance_id, p.record.role) for p in kept) == [(2, "server"), (4, "rpc"), (5, "server")]
        ended = [pids[(1, "cluster-head")], pids[(1, "server")], pids[(3, "rpc")]]
        _, alive = psutil.wait_procs([psutil.Process(pid) for pid in ended if psutil.pid_exists(pid)], timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert sorted(path.name for path in records.glob("*.json")) == ["2-server.json", "4-rpc.json", "5-server.json"]
    finally:
        for pid in pids.values():
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
