"""The vectorised helpers the candidate kinds rely on give exactly what the slow, obvious code gives.

- ``top(scores, k)`` = ``np.argsort(-scores, kind="stable")[:k]`` (best first, ties in position order),
  in O(n): it decides which one-GPU candidates are kept, so ties must break by name as before.
- ``representatives`` = the first worker (name order) of each group of workers with the same
  free-memory profile: one estimate per group.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpufleet.common.units import GiB
from gpufleet.scheduler.plugins.arrays import sorted_free_rows, top
from gpufleet.scheduler.plugins.groups import representatives
from tests.support.clusters import cluster, worker


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(0, 5), min_size=0, max_size=60), count=st.integers(1, 10))
def test_top_is_a_stable_sort_cut_short(values: list[int], count: int) -> None:
    scores = np.asarray(values, dtype=np.float64) / 3  # few distinct values: many ties
    assert top(scores, count).tolist() == np.argsort(-scores, kind="stable")[:count].tolist()


def test_representatives_are_the_first_of_each_look_alike_group() -> None:
    # Free per GPU after claims: p, q, s hold the same profile (one 70 GiB claim on one GPU, the GPU
    # order not mattering since rows are sorted most-free first); r differs (its claim is 10 GiB).
    gpus = [("cuda", "GPU", 80 * GiB)] * 2
    snap = cluster(*(worker(name, gpus, 64 * GiB, worker_id=i) for i, name in enumerate("pqrs"))).with_claim(
        {"p:cuda:0": 70 * GiB, "q:cuda:1": 70 * GiB, "r:cuda:0": 10 * GiB, "s:cuda:0": 70 * GiB}
    )
    sorted_free, _ = sorted_free_rows(snap, snap.layout.is_gpu)
    rows = np.arange(4)
    assert representatives(snap, rows, sorted_free) == [0, 2]  # p (for p, q, s) and r
    assert representatives(snap, np.asarray([1, 2, 3]), sorted_free) == [1, 2]
    assert representatives(snap, np.asarray([], dtype=np.int64), sorted_free) == []
