"""Scoring: one resource-allocation scorer for both strategies, differing in one line.

For a placement, let ``u_dev`` be the mean, over the devices it uses, of their usage after placing
it, and ``u_worker`` the same over every device of the workers involved (usage = claimed / (total
− reserved − used by others)). Then::

    allocation = (u_dev + u_worker) / 2            # 0 (idle) .. 1 (full)
    binpack:  score = 100 × allocation             # fill what is already in use
    spread:   score = 100 × (1 − allocation)       # prefer what is least used

Binpack keeps whole GPUs free for big models; spread puts replicas on different GPUs and workers.
The worker term makes spread pick another worker over another GPU of a busy one.
"""

from __future__ import annotations

from gpufleet.scheduler.framework import Placement, Request
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView


def _usage(snapshot: ClusterSnapshot, device: DeviceView, extra: int) -> float:
    usable = device.memory_total - device.reserved - device.used_by_others
    return min(1.0, (snapshot.claimed(device) + extra) / usable) if usable > 0 else 1.0


class ResourceAllocation:
    def __init__(self, strategy: str) -> None:
        self.strategy = strategy

    def score(self, request: Request, placement: Placement, snapshot: ClusterSnapshot) -> float:
        claims = placement.all_claims()
        devices = [d for d in (snapshot.device(i) for i in claims) if d is not None]
        used = [d for d in devices if d.is_gpu] or devices  # GPUs decide; a CPU placement has only its CPU
        u_dev = sum(_usage(snapshot, d, claims.get(d.id, 0)) for d in used) / max(len(used), 1)
        worker_names = {placement.worker.name, *(s.worker_name for s in placement.subordinates)}
        pool = [d for name in worker_names if (w := snapshot.worker(name)) is not None for d in (w.gpus or (w.cpu,))]
        u_worker = sum(_usage(snapshot, d, claims.get(d.id, 0)) for d in pool) / max(len(pool), 1)
        allocation = (u_dev + u_worker) / 2
        return 100 * allocation if self.strategy == "binpack" else 100 * (1 - allocation)
