"""Devices chosen by hand (``gpu_selector``): the selection decides the mode.

One GPU → single GPU; several GPUs of one worker → multi-GPU; devices of several workers →
distributed over RPC, the worker with the most selected devices as the main one. Selecting the CPU
devices of several workers gives a distributed placement whose RPC servers run on CPU: layers are
split between the main worker's CPU and the others by free memory. With ``cpu_offloading``, GPUs
that cannot hold everything take as many layers as fit.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.common.resources import Resources
from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.scheduler.framework import Mode, Placement, Request, Subordinate
from gpufleet.scheduler.plugins.fit import claim_of, estimate, shortfall, split_by_free
from gpufleet.scheduler.plugins.partial import most_layers
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView


class ManualSelection:
    mode = Mode.SINGLE_GPU  # varies with the selection

    def candidates(self, request: Request, workers: Sequence[WorkerView], snapshot: ClusterSnapshot) -> list[Placement]:
        chosen = [d for w in workers for d in w.devices if d.id in request.gpu_selector]
        by_worker: dict[int, list[DeviceView]] = {}
        for device in chosen:
            by_worker.setdefault(device.worker_id, []).append(device)
        if len(by_worker) < len({d.split(":")[0] for d in request.gpu_selector}):
            return []  # a selected device's worker is filtered out (not ready, selector…)
        ordered = sorted(by_worker, key=lambda w: (-len(by_worker[w]), _name(workers, w)))
        main = next(w for w in workers if w.id == ordered[0])
        if len(by_worker) == 1:
            return self._one_worker(request, main, by_worker[main.id], snapshot)
        if not request.distributed:
            return []
        subordinates = [next(w for w in workers if w.id == i) for i in ordered[1:]]
        return self._distributed(request, main, by_worker, subordinates, snapshot)

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
        split = split_by_free(snapshot, devices)
        layers = request.estimator.info.offloadable_layers
        gpu_layers = None
        if not local:
            # Main worker's CPU keeps a share of the layers in proportion to its free RAM.
            host_free = snapshot.free(main.cpu)
            remote_free = sum(snapshot.free(d) for d in remote)
            gpu_layers = max(1, min(layers, round(layers * remote_free / max(remote_free + host_free, 1))))
        result = estimate(
            request,
            LayerPlacement(
                gpus=len(local), rpc=len(remote), gpu_layers=gpu_layers, tensor_split=split, rpc_on_cpu=on_cpu
            ),
        )
        if shortfall(snapshot, result, main, devices) is not None:
            return []
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


def _name(workers: Sequence[WorkerView], worker_id: int) -> str:
    return next(w.name for w in workers if w.id == worker_id)
