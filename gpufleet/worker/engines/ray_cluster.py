"""A Ray cluster for ONE vLLM instance across workers: its command lines, ports, directory and stop.

vLLM runs a pipeline over several machines only through Ray (``--distributed-executor-backend
ray``). gpufleet starts a Ray cluster per instance, never a machine-wide one::

    main worker:   <venv>/bin/ray start --head --port P --node-ip-address IP --block ...
    subordinates:  <venv>/bin/ray start --address HEAD_IP:P --node-ip-address IP --block ...
    then, on the main worker, vLLM with RAY_ADDRESS=HEAD_IP:P (``vllm_launch``)

Invariants:

- Every port a node listens on comes from the worker's ``--rpc-server-port-range`` (the range it
  already opens to other workers for distributed instances): the GCS port (head), the node manager,
  object manager, runtime-env agent, metrics and dashboard-agent ports, and one port per Ray
  worker process (``--worker-port-list``: a list, so no contiguous block is
  needed). Nothing is left to Ray's defaults (6379, 10001, random ports), which would collide with
  another instance's cluster or be closed by the firewall.
- Each node has its own ``--temp-dir`` (``temp_dir``: per instance and per worker), so its sessions,
  sockets and logs are shared with no other Ray on the machine, and its processes can be found by it.
- Stopping is per cluster: the ``ray start --block`` process group is stopped like any engine
  (``EngineProcess.stop``), then ``stop_leftovers`` ends whatever still names this node's temp dir.
  ``ray stop`` is never run: it ends every Ray process of the user on the machine, other clusters'
  included.
- Telemetry off (``RAY_USAGE_STATS_ENABLED=0``, ``--disable-usage-stats``); no dashboard; the node
  sees only the placement's GPUs (``CUDA_VISIBLE_DEVICES``) and announces that many (``--num-gpus``).

The CPU build of vLLM cannot run on Ray (its platform has no Ray device key: the Ray executor refuses
it), so only GPU placements get a cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

RAY_VERSION = "2.60.0"  # installed beside vLLM on CUDA machines (``vllm_install``)
NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "runtime-env-agent-port",
    "metrics-export-port",
    "dashboard-agent-grpc-port",
    "dashboard-agent-listen-port",
)
HEAD_PORTS = ("port", *NODE_PORTS)  # no Ray client server: vLLM joins as a driver through the GCS
SPARE_WORKER_PORTS = 4  # Ray worker processes beyond one per GPU: the driver's, restarts
QUIET = {"RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class RayPorts:
    """The ports of one node: ``named`` (flag without dashes → port) and the Ray workers' ports."""

    named: dict[str, int]
    workers: tuple[int, ...]

    def all(self) -> list[int]:
        return [*self.named.values(), *self.workers]

    def flags(self) -> list[str]:
        flags = [f"--{name}={port}" for name, port in self.named.items()]
        return [*flags, f"--worker-port-list={','.join(map(str, self.workers))}"]


def ports_needed(*, head: bool, gpus: int) -> int:
    return len(HEAD_PORTS if head else NODE_PORTS) + max(1, gpus) + SPARE_WORKER_PORTS


def named_ports(ports: Sequence[int], *, head: bool) -> RayPorts:
    """``ports`` (``ports_needed`` of them) as a node's: the named ones first (``ports[0]`` is the
    head's GCS port, or a node's node manager: the one that listens once the node is up), then Ray's
    worker processes'."""
    names = HEAD_PORTS if head else NODE_PORTS
    if len(ports) <= len(names):
        raise ValueError(f"a Ray {'head' if head else 'node'} needs more than {len(names)} ports, got {len(ports)}")
    return RayPorts(dict(zip(names, ports, strict=False)), tuple(ports[len(names) :]))


def take_ports(acquire: Callable[[], int], release: Callable[[int], None], *, head: bool, gpus: int) -> RayPorts:
    """A node's ports from the worker's RPC port pool; all of them, or none (those taken are released)."""
    taken: list[int] = []
    try:
        for _ in range(ports_needed(head=head, gpus=gpus)):
            taken.append(acquire())
    except BaseException:
        for port in taken:
            release(port)
        raise
    return named_ports(taken, head=head)


def temp_dir(instance_id: int, worker_id: int) -> Path:
    """This node's own Ray directory. Short on purpose: Ray puts Unix sockets under it (≤ 107 bytes)."""
    return Path(tempfile.gettempdir()) / f"gpufleet-ray-{instance_id}-{worker_id}"


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def node_env(base: dict[str, str], gpu_indexes: Sequence[str]) -> dict[str, str]:
    """``base`` (the worker's environment less gpufleet's) with telemetry off and only these GPUs visible."""
    return base | QUIET | {"CUDA_VISIBLE_DEVICES": ",".join(gpu_indexes), "HIP_VISIBLE_DEVICES": ""}


def _common(ray: Path, ip: str, ports: RayPorts, temp: Path, gpus: int, cpus: int) -> list[str]:
    return [
        str(ray),
        "start",
        "--block",
        f"--node-ip-address={ip}",
        *ports.flags(),
        f"--temp-dir={temp}",
        f"--num-gpus={gpus}",
        f"--num-cpus={max(1, cpus)}",
        "--disable-usage-stats",
    ]


def head_command(ray: Path, *, ip: str, ports: RayPorts, temp: Path, gpus: int, cpus: int) -> list[str]:
    """The main worker's node: the cluster's head (GCS on ``ports.named["port"]``), no dashboard."""
    return [*_common(ray, ip, ports, temp, gpus, cpus), "--head", "--include-dashboard=false"]


def node_command(ray: Path, *, head: str, ip: str, ports: RayPorts, temp: Path, gpus: int, cpus: int) -> list[str]:
    """A subordinate's node, joining the head at ``head`` (``address(ip, port)``)."""
    return [*_common(ray, ip, ports, temp, gpus, cpus), f"--address={head}"]


def temp_of(command: Sequence[str]) -> Path | None:
    """The ``--temp-dir`` a ``ray start`` command line names (None for any other command)."""
    for part in command:
        if part.startswith("--temp-dir="):
            return Path(part.split("=", 1)[1])
    return None


def cluster_processes(temp: Path) -> list[psutil.Process]:
    """The processes of the node that owns ``temp``: each of Ray's names its temp or session dir."""
    marker = str(temp)
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if process.pid != os.getpid() and any(marker in part for part in cmdline):
            found.append(process)
    return found


def stop_leftovers(temp: Path, deadline: float = 10.0) -> list[int]:
    """End what is left of the node that owns ``temp`` (SIGTERM, ``deadline``, SIGKILL), then remove
    ``temp``; the pids it had to end. Run after its ``ray start --block`` process group was stopped."""
    processes = cluster_processes(temp)
    for process in processes:
        _signal(process, signal.SIGTERM)
    _, lingering = psutil.wait_procs(processes, deadline)
    for process in lingering:
        _signal(process, signal.SIGKILL)
    psutil.wait_procs(lingering, 5.0)
    shutil.rmtree(temp, ignore_errors=True)
    return [p.pid for p in processes]


def _signal(process: psutil.Process, number: int) -> None:
    try:
        process.send_signal(number)
    except psutil.NoSuchProcess:
        return
