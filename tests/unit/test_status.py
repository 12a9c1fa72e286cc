"""Worker status reports: real host values, and heartbeats that carry status only on a real change."""

from __future__ import annotations

from pathlib import Path

from gpufleet.common.units import GiB, MiB
from gpufleet.worker.devices.registry import DeviceDetection
from gpufleet.worker.status import collect_status, status_fingerprint
from tests.support.builders import H100, inventory


def test_collect_status_of_this_machine() -> None:
    status = collect_status(DeviceDetection())
    assert status.os == "linux" and status.arch in ("amd64", "arm64")
    assert status.memory_total > 0 and status.cpu_cores >= 1
    cpu = status.devices[-1]
    assert cpu.type == "cpu" and cpu.index == 0 and cpu.memory_total == status.memory_total


def test_inventory_replaces_detection(tmp_path: Path) -> None:
    path = inventory(tmp_path / "i.json", [H100, H100], cpu={"cores": 96, "memory": 1024 * GiB})
    status = collect_status(DeviceDetection(path))
    assert [(d.type.value, d.index, d.simulated) for d in status.devices] == [
        ("cuda", 0, True),
        ("cuda", 1, True),
        ("cpu", 0, True),
    ]
    assert status.cpu_cores == 96 and status.memory_total == 1024 * GiB


def test_fingerprint_ignores_noise_but_not_changes(tmp_path: Path) -> None:
    status = collect_status(DeviceDetection(inventory(tmp_path / "i.json", [H100])))
    base = status_fingerprint(status)
    noisy = status.model_copy(deep=True)
    noisy.cpu_utilization = 42.0
    noisy.devices[0].memory_used += MiB  # within the 64 MiB granularity
    assert status_fingerprint(noisy) == base
    changed = status.model_copy(deep=True)
    changed.devices[0].memory_used += 2 * GiB
    assert status_fingerprint(changed) != base
