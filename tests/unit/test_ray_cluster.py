"""The Ray cluster of one vLLM instance across workers (``worker/engines/ray_cluster.py``): command lines.

Every port from the worker's RPC range (none of Ray's defaults), a temp dir per instance and worker,
telemetry off, and never ``ray stop`` (it would end every Ray cluster on the machine).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpufleet.worker.engines.ray_cluster import (
    HEAD_PORTS,
    NODE_PORTS,
    RayPorts,
    address,
    head_command,
    node_command,
    node_env,
    ports_needed,
    take_ports,
    temp_dir,
)
from gpufleet.worker.ports import NoFreePort

RAY = Path("/venv/bin/ray")
ROOT = Path(__file__).resolve().parents[2]


def ports_from(start: int, *, head: bool, gpus: int) -> RayPorts:
    free = iter(range(start, start + 100))
    return take_ports(lambda: next(free), lambda port: None, head=head, gpus=gpus)


def flag_ports(command: list[str]) -> list[int]:
    ports = []
    for part in command:
        match = re.fullmatch(r"--([a-z-]*port[a-z-]*)=([\d,]+)", part)
        if match:
            ports += [int(p) for p in match.group(2).split(",")]
    return ports


def test_head_command_takes_every_port_from_the_range() -> None:
    ports = ports_from(47000, head=True, gpus=4)
    temp = temp_dir(12, 3)
    command = head_command(RAY, ip="10.0.0.5", ports=ports, temp=temp, gpus=4, cpus=8)
    # 7 named ports (GCS, node manager, object manager, runtime env, metrics, 2 agent) + 4 GPUs + 4 spare
    assert ports_needed(head=True, gpus=4) == len(HEAD_PORTS) + 4 + 4 == 15
    assert sorted(flag_ports(command)) == list(range(47000, 47015))
    assert command[:3] == [str(RAY), "start", "--block"] and "--head" in command
    assert "--port=47000" in command and "--include-dashboard=false" in command
    assert "--node-ip-address=10.0.0.5" in command and "--num-gpus=4" in command and "--num-cpus=8" in command
    assert f"--temp-dir={temp}" in command and "--disable-usage-stats" in command
    assert "--worker-port-list=47007,47008,47009,47010,47011,47012,47013,47014" in command


def test_node_command_joins_the_head_with_its_own_ports() -> None:
    ports = ports_from(48000, head=False, gpus=2)
    command = node_command(RAY, head="10.0.0.5:47000", ip="10.0.0.6", ports=ports, temp=temp_dir(12, 4), gpus=2, cpus=1)
    assert ports_needed(head=False, gpus=2) == len(NODE_PORTS) + 2 + 4 == 12
    assert sorted(flag_ports(command)) == list(range(48000, 48012))
    assert "--address=10.0.0.5:47000" in command and "--head" not in command
    assert "--node-ip-address=10.0.0.6" in command and "--num-gpus=2" in command


def test_temp_dir_per_instance_and_worker_short_enough_for_sockets() -> None:
    assert temp_dir(12, 3) != temp_dir(12, 4) != temp_dir(13, 3)
    # Ray's deepest socket: <temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store
    longest = f"{temp_dir(10**9, 10**9)}/session_2026-12-31_23-59-59_999999_4194304/sockets/plasma_store"
    assert len(longest) < 107


def test_env_telemetry_off_and_only_the_placement_gpus() -> None:
    env = node_env({"PATH": "/bin"}, ["2", "3"])
    assert env == {
        "PATH": "/bin",
        "RAY_USAGE_STATS_ENABLED": "0",
        "CUDA_VISIBLE_DEVICES": "2,3",
        "HIP_VISIBLE_DEVICES": "",
    }


def test_ports_are_all_or_none() -> None:
    handed = iter([47000, 47001, 47002])
    released: list[int] = []

    def acquire() -> int:
        port = next(handed, None)
        if port is None:
            raise NoFreePort("no free port in 47000-47002")
        return port

    with pytest.raises(NoFreePort):
        take_ports(acquire, released.append, head=False, gpus=1)
    assert released == [47000, 47001, 47002]


def test_ipv6_head_address() -> None:
    assert address("fd00::5", 47000) == "[fd00::5]:47000" and address("10.0.0.5", 47000) == "10.0.0.5:47000"


def test_no_ray_stop_anywhere() -> None:
    """``ray stop`` ends every Ray process of the user on the machine: no command gpufleet builds has a
    ``"stop"`` argument in a module that runs Ray (and none spells ``ray stop`` outside a sentence)."""
    argument = re.compile(r"""["']stop["']""")
    spelled = re.compile(r"""["'][^"'\n]*\bray stop\b""")
    offenders = []
    for path in (ROOT / "gpufleet").rglob("*.py"):
        text = path.read_text()
        if ("ray" in text.lower() and argument.search(text)) or spelled.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
