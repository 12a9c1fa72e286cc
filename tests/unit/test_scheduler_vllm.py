"""The vLLM kinds (``scheduler/plugins/vllm_*.py``) on simulated clusters, by the numbers.

vLLM claims u × total of each GPU it uses (u = 0.9): an H100 (80 GiB) is claimed 72 GiB and must
have 72 GiB free; an RTX 4090 (24 GiB) 21.6 GiB. Needs per GPU (``VllmModel.gpu_need``, formulas in
``estimate/vllm_memory.py``; 8192-token context):
  LLAMA8 (Llama-3-8B shapes, 14.96 GiB bf16):  TP1 20.43 GiB on an H100 (batch defaults 8192/1024), 17.83 on a 4090
  LLAMA70 (80 layers, 8192 hidden, 131 GiB):    TP2 72.06 > 72 on an H100 → TP4 38.25
  ODD (12 heads, 4 kv heads: valid TP 1, 2, 4): TP2 > 21.6 on a 4090, TP3 would fit but is invalid → TP4
"""

from __future__ import annotations

import math

import pytest

from gpufleet.common.units import GiB
from gpufleet.estimate.hf_config import parse_config
from gpufleet.estimate.safetensors_header import TensorInfo, WeightsSummary
from gpufleet.estimate.vllm_memory import VllmEstimator, VllmSettings
from gpufleet.estimate.vllm_model import VllmModel
from gpufleet.scheduler.framework import Mode, Placement, Request, Unschedulable
from gpufleet.scheduler.plugins.vllm_fit import HOST_RAM
from gpufleet.scheduler.scheduler import schedule
from gpufleet.scheduler.snapshot import ClusterSnapshot
from testkit.hf_model import TinyLlama
from tests.support.clusters import cluster, cpu_only, h100x8, rtx4090x4, worker

LLAMA8 = TinyLlama(
    layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256, max_position_embeddings=8192
)
LLAMA70 = TinyLlama(
    layers=80, hidden=8192, intermediate=28672, heads=64, kv_heads=8, vocab=128256, max_position_embeddings=8192
)
ODD = TinyLlama(
    layers=80, hidden=6144, intermediate=12288, heads=12, kv_heads=4, vocab=32000, max_position_embeddings=4096
)
H100_CLAIM = int(0.9 * 80 * GiB)  # 72 GiB
RTX_CLAIM = int(0.9 * 24 * GiB)  # 21.6 GiB


def model(shapes: TinyLlama, **settings: object) -> VllmModel:
    tensors = tuple(TensorInfo(n, "BF16", s, math.prod(s) * 2) for n, s in shapes.tensor_shapes().items())
    summary = WeightsSummary(tensors, ("model.safetensors",))
    return VllmModel(VllmEstimator(parse_config(shapes.config()), summary), VllmSettings(**settings))  # type: ignore[arg-type]


def place(shapes: TinyLlama, snapshot: ClusterSnapshot, **fields: object) -> Placement | Unschedulable:
    request = Request(1, "m-0", model(shapes), backend="vllm", **fields)  # type: ignore[arg-type]
    return schedule(request, snapshot)


@pytest.mark.parametrize(
    ("shapes", "snapshot", "mode", "gpus", "claim"),
    [
        (LLAMA8, cluster(h100x8("h")), "single_gpu", 1, H100_CLAIM),  # 20.43 ≤ 72
        (LLAMA8, cluster(rtx4090x4("r")), "single_gpu", 1, RTX_CLAIM),  # 17.83 ≤ 21.6
        (LLAMA70, cluster(h100x8("h")), "multi_gpu", 4, H100_CLAIM),  # TP2 72.06 > 72: TP4
        (ODD, cluster(rtx4090x4("r")), "multi_gpu", 4, RTX_CLAIM),  # TP2 > 21.6, TP3 invalid: TP4
    ],
)
def test_fewest_gpus_at_a_valid_tensor_parallel_size(
    shapes: TinyLlama, snapshot: ClusterSnapshot, mode: str, gpus: int, claim: int
) -> None:
    placed = place(shapes, snapshot)
    assert isinstance(placed, Placement), placed
    data = placed.as_json()
    assert data["mode"] == mode and len(data["device_ids"]) == gpus
    assert data["claim"]["vram"] == dict.fromkeys(data["device_ids"], claim)  # vLLM's claim, not the need
    assert data["claim"]["engine"] == {
        "tensor_parallel_size": gpus,
        "gpu_memory_utilization": 0.9,
        "max_model_len": min(shapes.max_position_embeddings, 8192),
        "kv_cache_bytes": None,
        "pipeline_parallel_size": 1,
    }


def test_a_gpu_with_less_free_than_the_claim_is_refused() -> None:
    # 80 GiB − 1 reserved − 19 used by others = 60 GiB free < 72 claimed, although the model needs 20.43
    busy = worker("busy", [("cuda", "NVIDIA H100 80GB HBM3", 80 * GiB)], 256 * GiB, gpu_used=19 * GiB)
    result = place(LLAMA8, cluster(busy))
    assert isinstance(result, Unschedulable)
    assert "needs 1 GPU with ≥ 72.0 GiB free each (0.9 of 80.0 GiB); at most 0 on one worker" in result.message
    # a lower utilization claims less: 0.7 × 80 = 56 GiB ≤ 60 free, and 20.43 ≤ 56
    request = Request(1, "m-0", model(LLAMA8, gpu_memory_utilization=0.7), backend="vllm")
    assert isinstance(schedule(request, cluster(busy)), Placement)


def test_more_gpus_than_one_worker_has_runs_a_pipeline_or_says_to_allow_one() -> None:
    # LLAMA70 on 4090s: TP4 35.80 > 21.6, TP8 19.02 ≤ 21.6, but each worker has 4 GPUs: two pipeline
    # stages of TP4 (half the layers each) on the two workers
    placed = place(LLAMA70, cluster(rtx4090x4("a"), rtx4090x4("b")))
    assert isinstance(placed, Placement) and placed.mode == Mode.DISTRIBUTED
    engine = placed.as_json()["claim"]["engine"]
    assert (engine["pipeline_parallel_size"], engine["tensor_parallel_size"]) == (2, 4)
    assert [s.worker_name for s in placed.subordinates] == ["b"] and placed.worker.name == "a"

    request = Request(1, "m-0", model(LLAMA70), backend="vllm", distributed=False)
    result = schedule(request, cluster(rtx4090x4("a"), rtx4090x4("b")))
    assert isinstance(result, Unschedulable)
    assert result.message.startswith("0/2 workers fit: 2 insufficient free VRAM for vLLM (needs 8 GPUs")
    assert "enable distributed inference to run it across workers (a pipeline over Ray)" in result.message


def test_cpu_only_worker_runs_vllm_cpu_with_its_kv_space() -> None:
    # RAM = weights 14.96 + KV space 4 (vLLM's documented default) + activation + 1.9 GiB process = 21.39 GiB
    placed = place(LLAMA8, cluster(cpu_only("c", ram=64 * GiB)))
    assert isinstance(placed, Placement) and placed.as_json()["mode"] == "cpu"
    engine = placed.as_json()["claim"]["engine"]
    assert engine["kv_cache_bytes"] == 4 * GiB and engine["tensor_parallel_size"] == 1
    assert model(LLAMA8).cpu().ram == placed.claim.ram


def test_gpu_worker_uses_its_cpu_only_with_cpu_offloading() -> None:
    small = rtx4090x4("r")  # LLAMA70 needs TP8 on 4090s: no fit on 4 GPUs; RAM 128 GiB < 138 GiB for vllm-cpu
    result = place(LLAMA8, cluster(worker("g", [("cuda", "RTX 3060", 12 * GiB)], 64 * GiB)))
    assert isinstance(result, Unschedulable)  # 0.9 × 12 = 10.8 GiB < 17 GiB needed
    assert "enabling CPU offloading would let it run on g (on its CPU only)" in result.message
    placed = place(LLAMA8, cluster(worker("g", [("cuda", "RTX 3060", 12 * GiB)], 64 * GiB)), cpu_offloading=True)
    assert isinstance(placed, Placement) and placed.mode.value == "cpu"
    assert isinstance(place(LLAMA70, cluster(small), cpu_offloading=True), Unschedulable)


@pytest.mark.parametrize(("strategy", "expected"), [("spread", "idle"), ("binpack", "used")])
def test_spread_and_binpack_choose_workers_like_llama_cpp(strategy: str, expected: str) -> None:
    used = h100x8("used")
    first = place(LLAMA8, cluster(h100x8("idle"), used))
    assert isinstance(first, Placement)
    snapshot = cluster(h100x8("idle"), used).with_claim({"used:cuda:0": H100_CLAIM})
    placed = place(LLAMA8, snapshot, placement_strategy=strategy)
    assert isinstance(placed, Placement) and placed.worker.name == expected


def test_cpu_offload_trades_gpus_for_host_ram() -> None:
    # LLAMA70 on H100s: TP2 needs 72.06 > 72 per GPU, so TP4. With --cpu-offload-gb 8 each GPU of TP2
    # holds 8 GiB less (64.06 ≤ 72): two GPUs, and the host keeps HOST_RAM + 2 × 8 GiB of weights.
    request = Request(1, "m-0", model(LLAMA70, cpu_offload_bytes=8 * GiB), backend="vllm")
    placed = schedule(request, cluster(h100x8("h")))
    assert isinstance(placed, Placement) and len(placed.device_ids) == 2
    assert placed.claim.ram == HOST_RAM + 2 * 8 * GiB
    tight = cluster(worker("h", [("cuda", "NVIDIA H100 80GB HBM3", 80 * GiB)] * 2, 16 * GiB))
    result = schedule(request, tight)  # 16 GiB of RAM cannot hold HOST_RAM + 16 GiB
    assert isinstance(result, Unschedulable)
