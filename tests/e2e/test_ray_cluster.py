"""A real Ray cluster for one instance (``worker/engines/ray_cluster.py``): a head and a node on this
machine, each with its own ports from a range and its own temp dir, form a 2-node cluster; stopping
their ``ray start --block`` processes (as engines are stopped) and the leftovers by temp dir ends
every process of that cluster, and leaves an unrelated Ray cluster on the machine running. The same
through a worker's own parts: the main worker's ``ClusterHeads`` and a subordinate's node from vLLM's
``Engine.part_launch``.

Needs Ray: the vLLM CUDA install's (``<venv>/bin/ray``), or any ``ray`` named by TEST_RAY_EXECUTABLE
(a venv with ``pip install ray==2.60.0``). Behind the ``vllm`` marker: pytest -m vllm.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpufleet.worker.address import route_source_ip
from gpufleet.worker.cluster_heads import ClusterHeads
from gpufleet.worker.engines.base import EngineOptions, PartRequest
from gpufleet.worker.engines.process import EngineProcess, launch, tail
from gpufleet.worker.engines.ray_cluster import (
    RayPorts,
    address,
    cluster_processes,
    head_command,
    node_command,
    node_env,
    stop_leftovers,
    take_ports,
    temp_dir,
)
from gpufleet.worker.engines.vllm_engine import VllmEngine
from gpufleet.worker.engines.vllm_install import VllmInstall, installed_copies
from gpufleet.worker.ports import PortPool

pytestmark = [pytest.mark.vllm, pytest.mark.e2e]

PORTS = range(47400, 47500)  # this test's own range
SMALL = ["--object-store-memory=100000000"]  # 100 MB: two nodes on a test machine
JOIN_DEADLINE = 90.0
# Ray takes a loopback address for "this machine" and swaps in its outward IP: use that one, as a
# worker advertises it (a UDP route lookup, no packet sent).
IP = route_source_ip("192.0.2.1") or "127.0.0.1"


def ray_binary() -> Path:
    named = os.environ.get("TEST_RAY_EXECUTABLE")
    candidates = [Path(named)] if named else [Path(c.venv) / "bin" / "ray" for c in installed_copies()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pytest.skip("no Ray here: set TEST_RAY_EXECUTABLE to a ray executable, or install vLLM for CUDA (it brings Ray)")


@pytest.fixture
def ray() -> Path:
    return ray_binary()


@pytest.fixture
def pool() -> PortPool:
    return PortPool(PORTS, IP)


def start(
    ray: Path, tmp_path: Path, pool: PortPool, worker_id: int, head: str | None
) -> tuple[EngineProcess, RayPorts]:
    ports = take_ports(pool.acquire, pool.release, head=head is None, gpus=0)
    temp = temp_dir(990001, worker_id)
    if head is None:
        command = head_command(ray, ip=IP, ports=ports, temp=temp, gpus=0, cpus=1)
    else:
        command = node_command(ray, head=head, ip=IP, ports=ports, temp=temp, gpus=0, cpus=1)
    env = node_env({k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}, [])
    role = "ray-head" if head is None else "ray-node"
    process = launch(
        tmp_path / "records",
        990001,
        role,
        command + SMALL,
        ports.all()[0],
        tmp_path / f"{role}.log",
        env,
        program="ray",
    )
    return process, ports


def alive_nodes(ray: Path, gcs: str) -> int:
    python = ray.parent / "python"
    script = "import ray; ray.init(address=%r, _node_ip_address=%r, logging_level='ERROR'); "
    script += "print(sum(n['Alive'] for n in ray.nodes()))"
    done = subprocess.run(
        [str(python), "-c", script % (gcs, IP)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


@pytest.fixture
def cleanup() -> Iterator[list[Path]]:
    temps: list[Path] = []
    yield temps
    for temp in temps:
        stop_leftovers(temp, 5.0)


async def test_one_instance_cluster_forms_and_stops_alone(
    ray: Path, tmp_path: Path, pool: PortPool, cleanup: list[Path]
) -> None:
    cleanup += [temp_dir(990001, 1), temp_dir(990001, 2)]
    head, head_ports = start(ray, tmp_path, pool, 1, None)
    gcs = address(IP, head_ports.named["port"])
    node, _ = start(ray, tmp_path, pool, 2, gcs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOIN_DEADLINE
    nodes = 0
    while loop.time() < deadline and head.alive() and node.alive():
        nodes = await asyncio.to_thread(alive_nodes, ray, gcs)
        if nodes == 2:
            break
        await asyncio.sleep(1)
    assert nodes == 2, f"head:\n{tail(tmp_path / 'ray-head.log')}\nnode:\n{tail(tmp_path / 'ray-node.log')}"
    assert cluster_processes(temp_dir(990001, 1)) and cluster_processes(temp_dir(990001, 2))

    await node.stop(10)
    await asyncio.to_thread(stop_leftovers, temp_dir(990001, 2))
    assert cluster_processes(temp_dir(990001, 2)) == []
    assert head.alive() and cluster_processes(temp_dir(990001, 1))  # the other node: untouched

    await head.stop(10)
    await asyncio.to_thread(stop_leftovers, temp_dir(990001, 1))
    assert cluster_processes(temp_dir(990001, 1)) == []
    assert not temp_dir(990001, 1).exists()


def engine_with(ray: Path) -> VllmEngine:
    """vLLM's engine as a worker has it once installed, its venv being the one that holds ``ray``."""
    engine = VllmEngine(EngineOptions())
    engine.copy = VllmInstall("0.32.0", "cuda", "vllm", "test", str(ray.parent.parent), 0.0, 0.0)
    return engine


async def test_the_workers_head_and_a_subordinates_node_form_the_instances_cluster(
    ray: Path, tmp_path: Path, pool: PortPool, cleanup: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main worker's ``ClusterHeads`` and a subordinate's part, through vLLM's engine (the command
    lines, ports and temp dirs a worker uses); stopping each ends its node and frees its ports."""
    monkeypatch.setenv("RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION", "0.01")  # two nodes on a test machine
    instance, main, sub = 990002, 1, 2
    cleanup += [temp_dir(instance, main), temp_dir(instance, sub)]
    engine = engine_with(ray)
    heads = ClusterHeads(tmp_path / "records", tmp_path / "logs", pool, host=IP, connect_host=IP)
    head_port = await heads.ensure(instance, "pipeline-test", main, engine, [], 1)
    assert await heads.ensure(instance, "pipeline-test", main, engine, [], 1) == head_port  # one head per instance
    head_ports = set(pool.taken)
    assert len(head_ports) == engine.part_ports(head=True, device_ids=[]) and head_port in head_ports

    ports = pool.acquire_many(engine.part_ports(head=False, device_ids=[]))
    node_launch = engine.part_launch(PartRequest(instance, sub, IP, ports, [], 1, address(IP, head_port)))
    node = launch(
        tmp_path / "records",
        instance,
        "rpc",
        node_launch.command,
        ports[0],
        tmp_path / "node.log",
        node_launch.env,
        program="ray",
    )
    gcs = address(IP, head_port)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JOIN_DEADLINE
    nodes = 0
    while loop.time() < deadline and node.alive():
        nodes = await asyncio.to_thread(alive_nodes, ray, gcs)
        if nodes == 2:
            break
        await asyncio.sleep(1)
    assert nodes == 2, (
        f"head:\n{tail(tmp_path / 'logs' / 'pipeline-test-head.log')}\nnode:\n{tail(tmp_path / 'node.log')}"
    )

    await node.stop(10)
    await asyncio.to_thread(engine.part_stopped, node_launch.command)
    assert cluster_processes(temp_dir(instance, sub)) == []
    assert cluster_processes(temp_dir(instance, main))  # the head: untouched

    old = heads.heads[instance]
    old.process.kill()  # the head dies: the next start is another head, on other ports
    await old.process.wait(0.1)
    again = await heads.ensure(instance, "pipeline-test", main, engine, [], 1)
    assert again != head_port and not set(heads.heads[instance].ports) & head_ports
    assert not set(old.ports) & pool.taken  # the dead head's ports were given back

    await heads.stop(instance)
    assert cluster_processes(temp_dir(instance, main)) == [] and not temp_dir(instance, main).exists()
    assert pool.taken == set(ports)  # the head's ports are free again

    # a restarted worker knows no head of its own: it avoids the one the server still records
    fresh = ClusterHeads(tmp_path / "records", tmp_path / "logs", pool, host=IP, connect_host=IP)
    recorded = address(IP, again)
    assert await fresh.ensure(instance, "pipeline-test", main, engine, [], 1, previous=recorded) != again
    await fresh.stop(instance)
    assert pool.taken == set(ports)
    assert heads.heads == {} and not (tmp_path / "records" / f"{instance}-cluster-head.json").exists()
