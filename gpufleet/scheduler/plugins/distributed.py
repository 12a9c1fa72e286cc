"""Kind 3: several workers over llama.cpp RPC: a main worker plus GPUs lent by subordinates.

Greedy and bounded: workers are ranked by the free memory of their allowed GPUs (one array
operation); for each of the few best as main worker, whole subordinate workers are added in that
order (so as few hosts as possible) until their free memory covers the model, then the split is
estimated (RPC devices first, as llama.cpp orders them) and every device checked; if one falls
short by layer rounding, the split is rebalanced (``rebalance.py``); if it still does not fit, the
next worker is added and the estimate repeated. Each of the few mains gives one candidate; the
scorer keeps the one whose subordinates hold the fewest bytes (``rpc_traffic.py``).
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request, Subordinate
from gpufleet.scheduler.plugins.arrays import gpu_mask, sorted_free_rows
from gpufleet.scheduler.plugins.multi_gpu import lower_bound
from gpufleet.scheduler.plugins.rebalance import fitting_split
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView

MAIN_CANDIDATES = 4  # main workers tried per decision
MAX_HOSTS = 16


class Distributed:
    mode = Mode.DISTRIBUTED

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        if not request.distributed or np.count_nonzero(passing) < 2:
            return []
        sorted_free, sorted_index = sorted_free_rows(snapshot, gpu_mask(request, snapshot, passing))
        totals = sorted_free.sum(axis=1)
        has_gpu = np.asarray((sorted_index >= 0).any(axis=1), dtype=bool)
        order = np.argsort(-totals, kind="stable")
        ranked = order[has_gpu[order]]  # workers with an allowed GPU, most free memory first
        floor = lower_bound(request)
        placements = []
        for main in ranked[:MAIN_CANDIDATES]:
            placement = self._around(request, snapshot, int(main), ranked, sorted_index, totals, floor)
            if placement is not None:
                placements.append(placement)
        return placements

    def _around(
        self,
        request: Request,
        snapshot: ClusterSnapshot,
        main: int,
        ranked: np.ndarray,
        sorted_index: np.ndarray,
        totals: np.ndarray,
        floor: int,
    ) -> Placement | None:
        layout = snapshot.layout

        def gpus(position: int) -> list[DeviceView]:
            return [layout.devices[int(i)] for i in sorted_index[position] if i >= 0]

        local = gpus(main)
        helpers: list[int] = []
        total = int(totals[main])
        for helper in (int(p) for p in ranked if p != main):  # lazily: stops after a few workers
            if len(helpers) + 1 >= MAX_HOSTS:
                return None
            helpers.append(helper)
            total += int(totals[helper])
            if total < floor:
                continue
            remote = [g for h in helpers for g in gpus(h)]
            devices = [*remote, *local]  # llama.cpp puts RPC devices first
            main_worker = snapshot.workers[main]
            fitted = fitting_split(
                request, snapshot, main_worker, devices, LayerPlacement(gpus=len(local), rpc=len(remote))
            )
            if fitted is not None:
                split, result = fitted
                return self._placement(
                    main_worker,
                    [snapshot.workers[h] for h in helpers],
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
            parts.append(Subordinate(worker.id, worker.name, ids, Resources(0, {i: needs[i] for i in ids if needs[i]})))
        main_claim = Resources(ram, {d.id: needs[d.id] for d in local if needs[d.id]})
        return Placement(
            self.mode, main, tuple(d.id for d in local), main_claim, offloaded, layers, split, tuple(parts)
        )
