"""Workers that look the same to a placement (same free memory on their allowed GPUs, most free
first, and on their CPU) get the same answer: group them so each answer is computed once.
A uniform cluster of 1,000 workers is then a handful of groups."""

from __future__ import annotations

import numpy as np

from gpufleet.scheduler.snapshot import ClusterSnapshot


def identical_rows(
    snapshot: ClusterSnapshot, rows: np.ndarray, sorted_free: np.ndarray, width: int | None = None
) -> list[np.ndarray]:
    """Groups (arrays of worker positions, in name order) among ``rows`` with equal free-memory profiles."""
    if rows.size == 0:
        return []
    columns = sorted_free[rows] if width is None else sorted_free[rows, :width]
    host = snapshot.free_array[snapshot.layout.cpu_of_worker[rows]][:, None]
    keys = np.concatenate([columns, host], axis=1)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    groups = [rows[inverse == g] for g in range(int(inverse.max()) + 1)]
    return sorted(groups, key=lambda g: int(g[0]))
