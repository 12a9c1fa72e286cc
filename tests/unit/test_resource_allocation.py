"""The one resource-allocation scorer, by the numbers: what spread and binpack give each candidate GPU.

Formula (``plugins/resource_allocation.py``): allocation = (u_dev + u_worker) / 2, where u_dev is the
device's usage after placing and u_worker the usage of all GPUs of its worker after placing; usable
memory = total − reserved (1 GiB) − used by processes gpufleet does not own. binpack = 100 ×
allocation, spread = 100 × (1 − allocation).
"""

from __future__ import annotations

import numpy as np
import pytest

from gpufleet.common.units import GiB
from gpufleet.scheduler.plugins.resource_allocation import ResourceAllocation
from tests.support.clusters import cluster, worker

# One worker, two 11 GiB GPUs: 10 GiB usable each (1 GiB reserved), 20 GiB on the worker.
# GPU 0 already holds a 5 GiB claim; the candidate needs 2.5 GiB.
#   GPU 0: u_dev = (5 + 2.5) / 10 = 0.75; u_worker = (5 + 2.5) / 20 = 0.375 → allocation 0.5625
#   GPU 1: u_dev = 2.5 / 10 = 0.25;        u_worker = 0.375                → allocation 0.3125
# With 1 GiB used by other processes on each GPU: 9 GiB usable each, 18 GiB on the worker.
#   GPU 0: u_dev = 7.5 / 9 = 0.8333; u_worker = 7.5 / 18 = 0.4167 → allocation 0.625
#   GPU 1: u_dev = 2.5 / 9 = 0.2778; u_worker = 0.4167          → allocation 0.3472
CASES = [
    ("binpack", 0, [56.25, 31.25]),
    ("spread", 0, [43.75, 68.75]),
    ("binpack", GiB, [62.5, 34.72]),
    ("spread", GiB, [37.5, 65.28]),
]


@pytest.mark.parametrize(("strategy", "used_by_others", "expected"), CASES)
def test_scores_of_each_gpu(strategy: str, used_by_others: int, expected: list[float]) -> None:
    node = worker("n1", [("cuda", "GPU", 11 * GiB)] * 2, 64 * GiB, gpu_used=used_by_others)
    snapshot = cluster(node).with_claim({"n1:cuda:0": 5 * GiB})
    layout = snapshot.layout
    gpus = np.asarray([layout.device_index["n1:cuda:0"], layout.device_index["n1:cuda:1"]], dtype=np.int64)
    scores = ResourceAllocation(strategy).score_single(snapshot, gpus, int(2.5 * GiB))
    assert [round(float(s), 2) for s in scores] == expected
    # binpack prefers the fuller GPU, spread the emptier one: the one line that differs
    assert int(np.argmax(scores)) == (0 if strategy == "binpack" else 1)
