"""Shared arithmetic of the candidate kinds: how to split over devices, and whether an estimate fits.

An estimate lists devices in llama.cpp's order (RPC servers first, then the main worker's GPUs);
``fits`` checks each against the snapshot's free memory, and the host part against the main
worker's free RAM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpufleet.common.resources import Resources
from gpufleet.common.units import MiB
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.estimate.memory import Estimate
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView


def split_by_free(snapshot: ClusterSnapshot, devices: Sequence[DeviceView]) -> tuple[float, ...]:
    """Shares proportional to free memory (llama.cpp's own default), in whole MiB so estimates repeat."""
    return tuple(float(max(snapshot.free(d) // MiB, 1)) for d in devices)


def estimate(request: Request, placement: LayerPlacement) -> Estimate:
    """The request's estimate for a layer placement, memoised for the decision."""
    cache = request.estimates
    result = cache.get(placement)
    if result is None:
        result = cache[placement] = request.gguf.estimate(placement)
    return result


@dataclass(frozen=True)
class Shortfall:
    device_id: str
    needed: int
    free: int


def shortfall(
    snapshot: ClusterSnapshot, result: Estimate, host: WorkerView, devices: Sequence[DeviceView]
) -> Shortfall | None:
    """The first device (or the host) the estimate does not fit on; None when everything fits."""
    host_free = snapshot.free(host.cpu)
    if result.ram > host_free:
        return Shortfall(host.cpu.id, result.ram, host_free)
    for device, needed in zip(devices, result.vram, strict=True):
        free = snapshot.free(device)
        if needed > free:
            return Shortfall(device.id, needed, free)
    return None


def claim_of(result: Estimate, devices: Sequence[DeviceView]) -> Resources:
    return Resources(ram=result.ram, vram={d.id: v for d, v in zip(devices, result.vram, strict=True) if v})
