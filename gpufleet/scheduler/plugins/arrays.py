"""Vectorised views the filters and candidate kinds share: which workers and devices a request may
use, as masks over the snapshot's flat orders (``snapshot.workers``, ``layout.devices``), and the
few-best selection that replaces a full sort.

Invariants: every mask is a fresh array the caller may modify; what depends only on the layout
(device types per backend, one label's value per worker) is computed once per layout and kept in
``layout.cache``, so a decision does not rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import numpy as np

from gpufleet.engines import supported_device_types
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.snapshot import ClusterSnapshot


def cached(snapshot: ClusterSnapshot, key: Hashable, build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()`` once per layout (shared by every snapshot ``with_claim`` derives from it)."""
    cache = snapshot.layout.cache
    value = cache.get(key)
    if not isinstance(value, np.ndarray):
        value = cache[key] = build()
    return value


def device_type_mask(snapshot: ClusterSnapshot, backend: str) -> np.ndarray:
    """Per device: is it of a type ``backend`` runs on (the CPU included when the backend runs there)."""
    layout = snapshot.layout
    supported = supported_device_types(backend)

    def build() -> np.ndarray:
        codes = [code for code, name in enumerate(layout.type_names) if name in supported]
        return np.isin(layout.type_code, np.asarray(codes, dtype=np.int64))

    return cached(snapshot, ("device_types", backend), build)


def gpu_mask(request: Request, snapshot: ClusterSnapshot, passing: np.ndarray) -> np.ndarray:
    """GPUs of passing workers, of a type the backend runs on, and hand-picked if a selector is set."""
    layout = snapshot.layout
    mask: np.ndarray = device_type_mask(snapshot, request.backend) & layout.is_gpu & passing[layout.owner]
    if request.gpu_selector:
        mask &= selected_devices(snapshot, request.gpu_selector)
    return mask


def selected_devices(snapshot: ClusterSnapshot, device_ids: tuple[str, ...]) -> np.ndarray:
    """Per device: is it one of ``device_ids`` (ids not in the snapshot are ignored)."""
    layout = snapshot.layout
    chosen = np.zeros(len(layout.devices), dtype=bool)
    indices = [layout.device_index[i] for i in device_ids if i in layout.device_index]
    chosen[np.asarray(indices, dtype=np.int64)] = True
    return chosen


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


def top(scores: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` highest scores, highest first, equal scores in position order.

    The same as ``np.argsort(-scores, kind="stable")[:count]``, in O(n) instead of a sort of all
    n: the ``count``-th highest value is found with a partition, and only the positions above it,
    then the first positions equal to it, are sorted.
    """
    if scores.size <= count:
        return np.argsort(-scores, kind="stable")
    threshold = np.partition(scores, scores.size - count)[scores.size - count]
    above = np.flatnonzero(scores > threshold)
    equal = np.flatnonzero(scores == threshold)[: count - above.size]
    chosen = np.sort(np.concatenate([above, equal]))
    return chosen[np.argsort(-scores[chosen], kind="stable")]
