"""Workers that look the same to a placement (same free memory on their allowed GPUs, most free
first, and on their CPU) get the same answer: each group is evaluated once, on its first worker in
name order, which is the one the tie-break by name would pick among them anyway. A uniform cluster
of 10,000 workers is then a handful of groups.

On a cluster where (almost) every worker looks different, e.g. because each GPU reports a slightly
different amount of memory in use by other processes, there are as many groups as workers, and an
estimate per group (tens of µs each, more for a binary search) would cost seconds at 10,000
workers. So, like kube-scheduler's ``percentageOfNodesToScore`` but ranked rather than first-found,
a kind evaluates at most ``EVALUATED`` groups per decision: the most promising by a vectorised
prediction the kind supplies (its docstring says which), ties by name. Deterministic, and the same
as evaluating every group whenever there are at most ``EVALUATED`` groups (every cluster of the
benchmark); beyond that, the placement is the best of the ``EVALUATED`` most promising, which can
differ from the best of all only where the prediction misorders candidates (by layer rounding).

Rows are compared as raw bytes (one ``np.unique`` over a 1-D view, a sort of n short keys) rather
than with ``np.unique(axis=0)``, which is several times slower on many equal rows.
"""

from __future__ import annotations

import numpy as np

from gpufleet.scheduler.plugins.arrays import top
from gpufleet.scheduler.snapshot import ClusterSnapshot

EVALUATED = 64  # look-alike groups a kind evaluates per decision, at most


def representatives(snapshot: ClusterSnapshot, rows: np.ndarray, sorted_free: np.ndarray) -> list[int]:
    """The first worker position (in name order) of each group of look-alikes among ``rows``, ascending."""
    if rows.size == 0:
        return []
    host = snapshot.free_array[snapshot.layout.cpu_of_worker[rows]][:, None]
    keys = np.ascontiguousarray(np.concatenate([sorted_free[rows], host], axis=1), dtype=np.int64)
    as_bytes = keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).reshape(-1)
    _, first = np.unique(as_bytes, return_index=True)  # index of each key's first occurrence
    positions: list[int] = np.sort(rows[first]).tolist()
    return positions


def most_promising(positions: list[int], promise: np.ndarray) -> list[int]:
    """At most ``EVALUATED`` of ``positions`` (in name order): highest ``promise`` first, ties by name."""
    if len(positions) <= EVALUATED:
        return positions
    return [positions[int(i)] for i in np.sort(top(promise, EVALUATED))]
