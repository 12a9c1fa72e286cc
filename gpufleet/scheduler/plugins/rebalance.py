"""A split over several workers that fits: by free memory first, else by layer counts that fit.

llama.cpp gives device ``i`` the layers ``l`` with ``c[i-1] ≤ l / N < c[i]`` (``c`` the cumulative
split fractions, ``N`` the offloaded layers), so a device can get one layer more than its share of
free memory, and with RPC devices first it is a small GPU lent by a subordinate that does: with a
4 × H100 main and a 4 × RTX 4090 subordinate, a 346 GiB model gives ``rtx4090:cuda:0`` 7 layers
(23.2 GiB of its 23.0 GiB free) while the H100s keep 11 GiB free each. Moving a share from one
device to the next only moves the extra layer along, so instead, for a few rounds::

    per_layer[i] = (weights[i] + kv[i]) / layers[i]                 # from the last estimate
    over[i]      = ⌈(needed[i] − free[i]) / per_layer[i]⌉            # devices that fall short
    spare[i]     = ⌊(free[i] − needed[i]) / per_layer[i]⌋            # devices with room
    layers[i]   −= over[i];  the same number of layers go to the devices with the most spare
    split        = layers                                             # whole layers, Σ = N

and the estimate is repeated. A split of whole layer counts summing to ``N`` gives each device
exactly its count (both sides of llama.cpp's comparison are then ``float(k) / float(N)``). The split
is passed to llama-server as ``--tensor-split``, so the engine runs what was estimated. A split by
free memory that fits is kept as it is; the host's RAM falling short is not rebalanced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from gpufleet.estimate.config import Placement as LayerPlacement
from gpufleet.estimate.memory import Estimate
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.plugins.fit import estimate, shortfall, split_by_free
from gpufleet.scheduler.snapshot import ClusterSnapshot, DeviceView, WorkerView

ROUNDS = 3  # rebalancing steps after the split by free memory (one estimate each)


def fitting_split(
    request: Request,
    snapshot: ClusterSnapshot,
    host: WorkerView,
    devices: Sequence[DeviceView],
    placement: LayerPlacement,
) -> tuple[tuple[float, ...], Estimate] | None:
    """A split over ``devices`` (llama.cpp's order) whose estimate fits, and that estimate; or None.

    ``placement`` is the layer placement to estimate (device counts, RPC, layers); its split is set here.
    """
    split = split_by_free(snapshot, devices)
    ids = [d.id for d in devices]
    for _ in range(ROUNDS + 1):
        layers = replace(placement, tensor_split=split)
        result = estimate(request, layers)
        short = shortfall(snapshot, result, host, devices)
        if short is None:
            return split, result
        if short.device_id not in ids:
            return None  # the host's RAM: another split does not help
        counts = np.bincount(request.gguf.layer_devices(layers) + 1, minlength=len(devices) + 1)[1:]
        moved = _moved(result, counts, np.asarray([snapshot.free(d) for d in devices], dtype=np.int64))
        if moved is None:
            return None
        split = tuple(float(c) for c in moved)
    return None


def _moved(result: Estimate, counts: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """Layer counts with the layers of short devices moved to the devices with the most spare layers."""
    held = np.asarray([d.weights + d.kv_cache for d in result.devices], dtype=np.float64)
    per_layer = np.where(counts > 0, held / np.maximum(counts, 1), held.sum() / max(int(counts.sum()), 1))
    room = free - np.asarray(result.vram, dtype=np.int64)
    over = np.where(room < 0, np.ceil(-room / per_layer), 0).astype(np.int64)
    spare = np.where(room > 0, np.floor(room / per_layer), 0).astype(np.int64)
    if np.any(over > counts) or over.sum() > spare.sum():
        return None
    moved = counts - over
    left = int(over.sum())
    for index in np.argsort(-spare, kind="stable"):  # most spare first; ties in device order
        take = min(left, int(spare[index]))
        moved[index] += take
        left -= take
    return moved
