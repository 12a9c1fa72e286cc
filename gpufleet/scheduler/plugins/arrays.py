"""Vectorised views the candidate kinds share: which devices a request may use, as masks over the
snapshot's flat device order, and which workers passed the filters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpufleet.engines import supported_device_types
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView


def worker_mask(snapshot: ClusterSnapshot, workers: Sequence[WorkerView]) -> np.ndarray:
    mask = np.zeros(len(snapshot.workers), dtype=bool)
    for worker in workers:
        mask[snapshot.position(worker)] = True
    return mask


def gpu_mask(request: Request, snapshot: ClusterSnapshot, workers: Sequence[WorkerView]) -> np.ndarray:
    """GPUs of passing workers, of a type the backend runs on, and hand-picked if a selector is set."""
    layout = snapshot.layout
    supported = supported_device_types(request.backend)
    cache_key = ("gpu_types", request.backend)
    types = layout.cache.get(cache_key)
    if not isinstance(types, np.ndarray):
        types = np.asarray([d.is_gpu and d.type in supported for d in layout.devices], dtype=bool)
        layout.cache[cache_key] = types
    mask: np.ndarray = types & worker_mask(snapshot, workers)[layout.owner]
    if request.gpu_selector:
        chosen = np.zeros(len(layout.devices), dtype=bool)
        for device_id in request.gpu_selector:
            index = layout.device_index.get(device_id)
            if index is not None:
                chosen[index] = True
        mask &= chosen
    return mask


def sorted_free_rows(snapshot: ClusterSnapshot, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per worker, its allowed GPUs most-free first: (free bytes, device indices), padded with 0 / -1."""
    matrix = snapshot.layout.gpu_matrix
    if matrix.shape[1] == 0:
        empty = np.zeros((len(snapshot.workers), 0), dtype=np.int64)
        return empty, empty
    valid = matrix >= 0
    safe = np.where(valid, matrix, 0)
    usable = valid & allowed[safe]
    free = np.where(usable, snapshot.free_array[safe], -1)
    order = np.argsort(-free, axis=1, kind="stable")
    rows = np.arange(matrix.shape[0])[:, None]
    sorted_free = free[rows, order]
    sorted_index = np.where(sorted_free >= 0, matrix[rows, order], -1)
    return np.maximum(sorted_free, 0), sorted_index
