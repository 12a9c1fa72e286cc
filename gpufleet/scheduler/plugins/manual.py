"""Devices chosen by hand (``gpu_selector``): the selection decides the mode.

One GPU → single GPU; several GPUs of one worker → multi-GPU; devices of several workers →
distributed over RPC: one placement with each of those workers as the main one (subordinates in
order of most selected devices, then name), of which the scorer keeps the one whose subordinates
hold the fewest bytes (``rpc_traffic.py``), so the main worker is the one holding the largest share.
Selecting the CPU devices of several workers gives a distributed placement whose RPC servers run on
CPU: layers are split between the main worker's CPU and the others by free memory. With
``cpu_offloading``, GPUs that cannot hold everything take as many layers as fit.
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.resources import Resources
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request, Subordinate
from gpufleet.scheduler.plugins.fit import claim_of, estimate, shortfall, split_by_free
from gpufleet.scheduler.plugins.partial import most_layers
from gpufleet.scheduler.plugins.rebalance import fitting_split
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView


class ManualSelection:
    mode = Mode.SINGLE_GPU  # varies with the selection

    def candidates(self, request: Request, passing: np.ndarray, snapshot: ClusterSnapshot) -> list[Placement]:
        workers = [snapshot.workers[int(p)] for p in np.flatnonzero(passing)]  # owners of selected devices
        by_worker: dict[int, list[DeviceView]] = {}
        for worker in workers:
            for device in worker.devices:
                if device.id in request.gpu_selector:
                    by_worker.setdefault(worker.id, []).append(device)
        if len(by_worker) < len({d.split(":")[0] for d in request.gpu_selector}):
            return []  # a selected device's worker is filtered out (not ready, selector…)
        hosts = sorted((w for w in workers if w.id in by_worker), key=lambda w: (-len(by_worker[w.id]), w.name))
        if len(hosts) == 1:
            return self._one_worker(request, hosts[0], by_worker[hosts[0].id], snapshot)
        if not request.distributed:
            return []
        placements = []
        for main in hosts:  # each as the main worker: the scorer keeps the one lending the least (rpc_traffic)
            subordinates = [w for w in hosts if w is not main]
            placements += self._distributed(request, main, by_worker, subordinates, snapshot)
        return placements

    def _one_worker(
        self, request: Request, worker: WorkerView, devices: list[DeviceView], snapshot: ClusterSnapshot
    ) -> list[Placement]:
        gpus = [d for d in devices if d.is_gpu]
        if not gpus:  # its CPU only
            result = estimate(request, LayerPlacement(gpus=0))
            if shortfall(snapshot, result, worker, []) is None:
                return [Placement(Mode.CPU, worker, (worker.cpu.id,), Resources(result.ram, {}), 0, result.layers)]
            return []
        split = split_by_free(snapshot, gpus) if len(gpus) > 1 else ()
        result = estimate(request, LayerPlacement(gpus=len(gpus), tensor_split=split or None))
        if shortfall(snapshot, result, worker, gpus) is None:
            mode = Mode.SINGLE_GPU if len(gpus) == 1 else Mode.MULTI_GPU
            return [
                Placement(
                    mode,
                    worker,
                    tuple(g.id for g in gpus),
                    claim_of(result, gpus),
                    result.offloaded_layers,
                    result.layers,
                    split,
                )
            ]
        if request.cpu_offloading:
            partial = most_layers(request, worker, gpus, snapshot)
            return [partial] if partial is not None else []
        return []

    def _distributed(
        self,
        request: Request,
        main: WorkerView,
        by_worker: dict[int, list[DeviceView]],
        subordinates: list[WorkerView],
        snapshot: ClusterSnapshot,
    ) -> list[Placement]:
        remote = [d for w in subordinates for d in by_worker[w.id]]
        local = [d for d in by_worker[main.id] if d.is_gpu]
        on_cpu = any(not d.is_gpu for d in remote)
        devices = [*remote, *local]
        layers = request.gguf.info.offloadable_layers
        gpu_layers = None
        if not local:
            # Main worker's CPU keeps a share of the layers in proportion to its free RAM.
            host_free = snapshot.free(main.cpu)
            remote_free = sum(snapshot.free(d) for d in remote)
            gpu_layers = max(1, min(layers, round(layers * remote_free / max(remote_free + host_free, 1))))
        fitted = fitting_split(
            request,
            snapshot,
            main,
            devices,
            LayerPlacement(gpus=len(local), rpc=len(remote), gpu_layers=gpu_layers, rpc_on_cpu=on_cpu),
        )
        if fitted is None:
            return []
        split, result = fitted
        needs = dict(zip([d.id for d in devices], result.vram, strict=True))
        parts = tuple(
            Subordinate(
                w.id,
                w.name,
                tuple(d.id for d in by_worker[w.id]),
                Resources(0, {d.id: needs[d.id] for d in by_worker[w.id] if needs[d.id]}),
            )
            for w in subordinates
        )
        claim = Resources(result.ram, {d.id: needs[d.id] for d in local if needs[d.id]})
        return [
            Placement(
                Mode.DISTRIBUTED,
                main,
                tuple(d.id for d in by_worker[main.id]),
                claim,
                result.offloaded_layers,
                result.layers,
                split,
                parts,
            )
        ]
