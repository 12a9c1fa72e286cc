"""Distributed placements: the main worker (llama-server) is the one keeping most of the model.

Order (``plugins/rpc_traffic.py``): key = (b_sub, −score, worker name, device ids), where b_sub is
the bytes the subordinates hold (what is sent over the network at load, and whose work is behind a
network hop at every token). Sizes below come from the estimator, ctx 8192, in GiB (2 decimals):

llama-3.1-405b shape at q8_0, on GPUs per offloaded layer: 3.15 GiB of weights + 0.03 GiB KV; each
device that holds layers adds 0.52 GiB compute + 0.58 GiB overhead (GPU_OVERHEAD, 590 MiB since the
H200 measurement of issue 16; it was 384 MiB = 0.38 GiB, and every figure below grew by 0.20 GiB per
device holding layers and 0.32 GiB of host RAM (GPU_HOST_OVERHEAD, 325 MiB)). Free memory: H100 80 GiB − 1
reserved = 79 GiB; RTX 4090 24 − 1 = 23 GiB.
- 108 layers ("346 GiB"): weights + KV 346.13 GiB; 109 offloaded layers (108 blocks + output).
- 90 layers: weights + KV 288.79 GiB; 91 offloaded layers.

A 4090 with 6 layers needs 6 × 3.19 + 1.10 = 20.21 GiB; with 7 it needs 23.40 GiB > 23.00 free.
Split by free memory, RPC devices first (llama.cpp's order), the first 4090 gets 7 layers whenever
it is lent by a subordinate, so the H100-main placement only fits once the split is rebalanced to
whole layers (``plugins/rebalance.py``): 6 per 4090, the rest on the H100s.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpufleet.common.units import GiB
from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import model_info
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.rpc_traffic import subordinate_bytes
from gpufleet.scheduler.scheduler import candidates, feasible, kinds_for, schedule
from gpufleet.scheduler.snapshot import WorkerView
from testkit.synthetic import preset, scaled, write_model
from tests.support.clusters import cluster, rtx4090x4, worker


def h100(name: str, count: int) -> WorkerView:
    return worker(name, [("cuda", "NVIDIA H100 80GB HBM3", 80 * GiB)] * count, 1024 * GiB)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Estimator]:
    folder = tmp_path_factory.mktemp("models")
    result = {}
    for layers in (108, 90):
        path = write_model(
            folder / f"405b-{layers}.gguf", scaled(preset("llama-3.1-405b"), n_layer=layers), "q8_0", sparse=True
        )
        result[layers] = Estimator(model_info(read_model(path)), RunConfig(ctx_size=8192))
    return result


def gib(amount: int) -> float:
    return round(amount / GiB, 2)


HANDPICKED = tuple(f"h100:cuda:{i}" for i in range(4)) + tuple(f"rtx4090:cuda:{i}" for i in range(4))

# (id, workers, model layers, gpu_selector, expected main, expected subordinates,
#  b_sub of every candidate by its main worker, the winner's first)
CASES: list[tuple[str, Any, int, tuple[str, ...], str, list[str], dict[str, float]]] = [
    (
        # 4 × H100 (316 GiB free) + 4 × 4090 (92 GiB free), 346 GiB.
        #   main h100: 4090s lend 6 layers each = 4 × 20.21 = 80.85 GiB; the H100s hold the other
        #              85 layers (22 + 21 + 21 + 21) = 274.07 GiB, + 2.58 GiB RAM on the host.
        #   main rtx4090: the H100s lend 275.18 GiB; the 4090s keep 79.75 GiB.
        # Before: only the rtx4090 main fitted (7 layers on rtx4090:cuda:0 with the H100 main), so the
        # 4090 worker ran llama-server and 274 GiB crossed the network.
        "h100 and 4090 workers",
        lambda: cluster(h100("h100", 4), rtx4090x4("rtx4090")),
        108,
        (),
        "h100",
        ["rtx4090"],
        {"h100": 80.85, "rtx4090": 275.18},
    ),
    (
        # The same eight GPUs picked by hand: each selected worker is tried as the main one; same bytes.
        # Before: "selected devices too small": the h100 worker was the main one (equal device counts,
        # first by name) and the split by free memory gave rtx4090:cuda:0 7 layers.
        "h100 and 4090 handpicked",
        lambda: cluster(h100("h100", 4), rtx4090x4("rtx4090")),
        108,
        HANDPICKED,
        "h100",
        ["rtx4090"],
        {"h100": 80.85, "rtx4090": 275.18},
    ),
    (
        # Two equal 4 × H100 workers: split by free memory, the subordinate holds 179.61 GiB either
        # way (its first GPU one layer more), the main 175.32 GiB. Equal b_sub, equal spread score
        # (44.095): the tie goes to the name, as before.
        "equal workers",
        lambda: cluster(h100("a", 4), h100("b", 4)),
        108,
        (),
        "a",
        ["b"],
        {"a": 179.61, "b": 179.61},
    ),
    (
        # Three workers, two needed: a 2 × H100 (158 GiB free), b 4 × 4090 (92), c 4 × H100 (316).
        #   main c: a lends 61.63 + 58.44 = 120.07 GiB; c keeps 232.66 GiB.
        #   main a: c lends 236.95 GiB.      main b: c lends 275.18 GiB.
        # Before: main a (its spread score tied c's at 25.839, and a comes first by name).
        "three workers, two hosts",
        lambda: cluster(h100("a", 2), rtx4090x4("b"), h100("c", 4)),
        108,
        (),
        "c",
        ["a"],
        {"c": 120.07, "a": 236.95, "b": 275.18},
    ),
    (
        # Three workers, all needed (289 GiB > 158 + 92): a 2 × H100, b and c 4 × 4090.
        #   main a: b and c lend 6 layers per 4090 = 80.85 + 80.85 = 161.71 GiB (rebalanced split);
        #           a's H100s keep the other 43 layers (22 + 21) = 138.08 GiB.
        #   main b: a lends 139.18, c 80.85 = 220.04 GiB.   main c: the same, 220.04 GiB.
        # Before: main b (the H100 main did not fit without the rebalanced split).
        "three workers, three hosts",
        lambda: cluster(h100("a", 2), rtx4090x4("b"), rtx4090x4("c")),
        90,
        (),
        "a",
        ["b", "c"],
        {"a": 161.71, "b": 220.04, "c": 220.04},
    ),
]


@pytest.mark.parametrize(
    ("build", "layers", "selected", "main", "subordinates", "lent"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_main_worker_keeps_most_of_the_model(
    models: dict[int, Estimator],
    build: Any,
    layers: int,
    selected: tuple[str, ...],
    main: str,
    subordinates: list[str],
    lent: dict[str, float],
) -> None:
    snapshot = build()
    request = Request(instance_id=1, instance_name="i", estimator=models[layers], gpu_selector=selected)
    result = schedule(request, snapshot)
    assert isinstance(result, Placement), getattr(result, "message", result)
    assert result.mode == Mode.DISTRIBUTED
    assert result.worker.name == main
    assert [s.worker_name for s in result.subordinates] == subordinates
    found = candidates(request, feasible(request, snapshot), snapshot, kinds_for(request))
    assert {p.worker.name: gib(subordinate_bytes(p)) for p in found} == lent
    assert gib(subordinate_bytes(result)) == min(lent.values())
    for device_id, amount in result.all_claims().items():  # a rebalanced split still fits every device
        device = snapshot.device(device_id)
        assert device is not None and amount <= snapshot.free(device)


def test_rebalanced_split_is_whole_layers(models: dict[int, Estimator]) -> None:
    # 4090s first (RPC), then the H100s: 4 × 6 + 22 + 21 + 21 + 21 = 109 offloaded layers.
    snapshot = cluster(h100("h100", 4), rtx4090x4("rtx4090"))
    result = schedule(Request(instance_id=1, instance_name="i", estimator=models[108]), snapshot)
    assert isinstance(result, Placement)
    assert result.tensor_split == (6.0, 6.0, 6.0, 6.0, 22.0, 21.0, 21.0, 21.0)
    assert result.offload_layers == result.total_layers == 109
    assert gib(sum(result.claim.vram.values())) == 274.07
