"""Kind 3: several workers over llama.cpp RPC: a main worker plus GPUs lent by subordinates.

Greedy and bounded: for each of the few main workers with the most free GPU memory, add whole
subordinate workers (most free first, so as few hosts as possible) until their free memory
covers the model, then estimate the split (RPC devices first, as llama.cpp orders them) and check
every device; if one falls short, add the next worker and try again.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Claim, Mode, Placement, Request, Subordinate
from gpufleet.scheduler.plugins.fit import estimate, most_free_first, shortfall, split_by_free, usable_gpus
from gpufleet.scheduler.plugins.multi_gpu import lower_bound
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView

MAIN_CANDIDATES = 4  # main workers tried per decision
MAX_HOSTS = 16


def _free_gpu(snapshot: ClusterSnapshot, request: Request, worker: WorkerView) -> int:
    return sum(snapshot.free(g) for g in usable_gpus(request, worker))


class Distributed:
    mode = Mode.DISTRIBUTED

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        if not request.distributed or len(workers) < 2:
            return []
        floor = lower_bound(request)
        ranked = sorted(
            (w for w in workers if usable_gpus(request, w)), key=lambda w: (-_free_gpu(snapshot, request, w), w.name)
        )
        placements = []
        for main in ranked[:MAIN_CANDIDATES]:
            placement = self._around(request, main, [w for w in ranked if w is not main], snapshot, floor)
            if placement is not None:
                placements.append(placement)
        return placements

    def _around(
        self, request: Request, main: WorkerView, others: list[WorkerView], snapshot: ClusterSnapshot, floor: int
    ) -> Placement | None:
        local = most_free_first(snapshot, usable_gpus(request, main))
        subordinates: list[WorkerView] = []
        total = sum(snapshot.free(g) for g in local)
        for helper in others:
            if len(subordinates) + 1 >= MAX_HOSTS:
                return None
            subordinates.append(helper)
            total += _free_gpu(snapshot, request, helper)
            if total < floor:
                continue
            remote = [g for w in subordinates for g in most_free_first(snapshot, usable_gpus(request, w))]
            devices = [*remote, *local]  # llama.cpp puts RPC devices first
            split = split_by_free(snapshot, devices)
            result = estimate(request, LayerPlacement(gpus=len(local), rpc=len(remote), tensor_split=split))
            if shortfall(snapshot, result, main, devices) is None:
                return self._placement(
                    main,
                    subordinates,
                    local,
                    remote,
                    result.vram,
                    result.ram,
                    result.offloaded_layers,
                    result.layers,
                    split,
                )
        return None

    def _placement(
        self,
        main: WorkerView,
        subordinates: list[WorkerView],
        local: list[DeviceView],
        remote: list[DeviceView],
        vram: list[int],
        ram: int,
        offloaded: int,
        layers: int,
        split: tuple[float, ...],
    ) -> Placement:
        needs = dict(zip([d.id for d in (*remote, *local)], vram, strict=True))
        parts = []
        for worker in subordinates:
            ids = tuple(d.id for d in remote if d.worker_id == worker.id)
            parts.append(Subordinate(worker.id, worker.name, ids, Claim(0, {i: needs[i] for i in ids if needs[i]})))
        main_claim = Claim(ram, {d.id: needs[d.id] for d in local if needs[d.id]})
        return Placement(
            self.mode, main, tuple(d.id for d in local), main_claim, offloaded, layers, split, tuple(parts)
        )
