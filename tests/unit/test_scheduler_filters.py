"""Each filter's vectorised verdict (``passing``, all workers at once) equals its per-worker ``check``.

The scheduler decides with ``passing``; ``check`` only phrases the reason of a rejected worker. A
table of requests over one cluster that every filter rejects some worker of.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpufleet.common.units import GiB
from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import model_info
from gpufleet.scheduler.framework import Request
from gpufleet.scheduler.scheduler import FILTERS, feasible, rejections
from gpufleet.scheduler.snapshot import ClusterSnapshot
from testkit.synthetic import preset, scaled, write_model
from tests.support.clusters import cluster, cpu_only, h100x8, m2_ultra, rtx4090x4, worker


@pytest.fixture(scope="module")
def estimator(tmp_path_factory: pytest.TempPathFactory) -> Estimator:
    path = tmp_path_factory.mktemp("models") / "small.gguf"
    write_model(path, scaled(preset("llama-3.1-8b"), n_layer=4), "f16", sparse=True)
    return Estimator(model_info(read_model(path)), RunConfig(ctx_size=2048))


def snapshot() -> ClusterSnapshot:
    return cluster(
        h100x8("a", labels={"zone": "eu"}),
        rtx4090x4("b", labels={"zone": "us"}, state="not_ready"),
        m2_ultra("c"),
        cpu_only("d"),
        worker("e", [("rocm", "MI300X", 192 * GiB)], 512 * GiB, state="maintenance", labels={"zone": "eu"}),
        rtx4090x4("f", labels={"zone": "eu", "tier": "spot"}),
    )


REQUESTS: list[dict[str, Any]] = [
    {},
    {"worker_selector": {"zone": "eu"}},
    {"worker_selector": {"zone": "eu", "tier": "spot"}},
    {"worker_selector": {"zone": "mars"}},
    {"gpu_selector": ("a:cuda:3", "f:cuda:0", "nowhere:cuda:0")},
    {"gpu_selector": ("d:cpu:0",)},
    {"avoid": {"a": "engine failed 3 times", "gone": "left the cluster"}},
    {"backend": "no-such-engine"},
]


@pytest.mark.parametrize("fields", REQUESTS, ids=[str(r) for r in REQUESTS])
def test_passing_agrees_with_check(estimator: Estimator, fields: dict[str, Any]) -> None:
    snap = snapshot()
    request = Request(instance_id=1, instance_name="i", estimator=estimator, **fields)
    for check in FILTERS:
        expected = [check.check(request, w, snap).ok for w in snap.workers]
        assert check.passing(request, snap).tolist() == expected, check.name
    # the decision is the AND of all filters; each rejected worker keeps its first filter's reason
    together = feasible(request, snap)
    assert together.tolist() == [all(f.check(request, w, snap).ok for f in FILTERS) for w in snap.workers]
    reasons = rejections(request, snap, together)
    assert set(reasons) == {w.name for w, ok in zip(snap.workers, together.tolist(), strict=True) if not ok}


def test_cached_arrays_are_not_shared_with_callers(estimator: Estimator) -> None:
    # A caller may modify what passing returns: the per-layout cache underneath stays intact.
    snap = snapshot()
    request = Request(instance_id=1, instance_name="i", estimator=estimator, worker_selector={"zone": "eu"})
    for check in FILTERS:
        check.passing(request, snap)[:] = False
    assert feasible(request, snap).tolist() == [True, False, False, False, False, True]
    assert feasible(request, snap.with_claim({"a:cuda:0": GiB})).tolist() == [True, False, False, False, False, True]
