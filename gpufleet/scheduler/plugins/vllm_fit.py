"""Which GPUs can take a vLLM instance at a tensor-parallel size: the claim rule, over all devices at once.

vLLM takes ``gpu_memory_utilization`` (u) of EACH GPU it uses and refuses to start when less than that
is free (``estimate/vllm_memory.py``). So for tensor-parallel size tp a GPU d is usable when::

    claim_d = ⌊u × total_d⌋                      # total: the device's whole memory, not what is free
    free_d  ≥ claim_d                              # vLLM's start-up check
    need(tp, total_d) ≤ claim_d                    # weights/tp + KV + activation + overhead fit in it

``need`` depends on a GPU's size (and whether it is an A100: vLLM's batch defaults), so it is
estimated once per distinct (size, A100) among the candidate GPUs. The claim recorded on a device is
``claim_d``, whatever the model needs of it: that is what vLLM takes. The host keeps
``HOST_RAM`` for the API server and engine processes, plus the weights ``--cpu-offload-gb`` moves off
each of its GPUs (``host_ram``).
"""

from __future__ import annotations

import numpy as np

from gpufleet.common.units import GiB
from gpufleet.estimate.vllm_model import VllmModel
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.plugins.arrays import cached, gpu_mask
from gpufleet.scheduler.snapshot import ClusterSnapshot

# Per GPU placement: vLLM's API server, engine core and workers' runtime. Not measured on a GPU: the
# CPU build's processes take 1.9 GiB (``vllm_cpu_memory``) and a CUDA runtime adds its host side.
HOST_RAM = 2 * GiB


def vllm_model(request: Request) -> VllmModel:
    if not isinstance(request.estimator, VllmModel):
        raise TypeError(f"{request.instance_name}: a vLLM kind was asked to place a GGUF model")
    return request.estimator


def device_totals(snapshot: ClusterSnapshot) -> np.ndarray:
    """Per device: its whole memory (the base of vLLM's claim)."""
    return cached(snapshot, "memory_total", lambda: np.asarray([d.memory_total for d in snapshot.layout.devices]))


def _a100(snapshot: ClusterSnapshot) -> np.ndarray:
    return cached(snapshot, "a100", lambda: np.asarray(["a100" in d.name.lower() for d in snapshot.layout.devices]))


def claims(model: VllmModel, snapshot: ClusterSnapshot) -> np.ndarray:
    """Per device: ⌊u × total⌋ (the same float product as ``VllmModel.claim``)."""
    return (model.utilization * device_totals(snapshot)).astype(np.int64)


def usable_gpus(request: Request, snapshot: ClusterSnapshot, passing: np.ndarray, tp: int, pp: int = 1) -> np.ndarray:
    """Per device: a GPU of a passing worker that a tp-way vLLM instance (of ``pp`` pipeline stages, the
    neediest stage's need) can use (the rule above)."""
    model = vllm_model(request)
    claim = claims(model, snapshot)
    mask = gpu_mask(request, snapshot, passing) & (snapshot.free_array >= claim)
    indices = np.flatnonzero(mask)
    if indices.size == 0:
        return mask
    keys = device_totals(snapshot)[indices] * 2 + _a100(snapshot)[indices]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    devices = snapshot.layout.devices
    needs = np.asarray([model.gpu_need(tp, d.memory_total, d.name, pp) for d in (devices[indices[i]] for i in first)])
    mask[indices] = needs[inverse.reshape(-1)] <= claim[indices]
    return mask


def host_ram(model: VllmModel, gpus: int) -> int:
    """What a worker's RAM gives an instance using ``gpus`` of its GPUs: the processes, and the
    weights offloaded from each GPU (``--cpu-offload-gb``)."""
    return HOST_RAM + model.settings.cpu_offload_bytes * gpus


def host_fits(snapshot: ClusterSnapshot, need: int = HOST_RAM) -> np.ndarray:
    """Per worker: its free RAM holds ``need`` (``host_ram``)."""
    fits: np.ndarray = snapshot.free_array[snapshot.layout.cpu_of_worker] >= need
    return fits
