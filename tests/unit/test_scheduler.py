"""Placement decisions, table-driven on named hardware and sparse GGUF files of real shapes.

Sizes used in the comments (f16 unless said; ctx 8192, 4 slots, unified KV, flash attention):
- llama-3.1-8b q8_0: weights 7.4 GiB on the GPU; KV 8192 × 128 KiB = 1 GiB → about 8.9 GiB on one GPU.
- llama-3.1-70b f16: weights 131 GiB; KV 8192 × 320 KiB = 2.5 GiB → too big for one 80 GB H100
  (79 GiB free after 1 GiB reserved), fits two.
- llama-3.1-405b f16: weights 756 GiB; more than one worker's 8 × 79 GiB = 632 GiB → two workers.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpufleet.common.units import GiB
from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import model_info
from gpufleet.scheduler.framework import Mode, Placement, Request, Unschedulable
from gpufleet.scheduler.scheduler import schedule
from gpufleet.scheduler.snapshot import ClusterSnapshot
from testkit.synthetic import preset, write_model
from tests.support.clusters import cluster, cpu_only, h100x8, m2_ultra, rtx4090x4, worker

CONFIG = RunConfig(ctx_size=8192)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Estimator]:
    folder = tmp_path_factory.mktemp("models")
    result = {}
    for name, weights in [
        ("llama-3.1-8b", "q8_0"),
        ("llama-3.1-70b", "f16"),
        ("llama-3.1-405b", "f16"),
        ("llama-3.1-70b-q4", "q4_0"),
    ]:
        shape = preset(name.removesuffix("-q4"))
        path = write_model(folder / f"{name}.gguf", shape, weights, sparse=True)  # type: ignore[arg-type]
        result[name] = Estimator(model_info(read_model(path)), CONFIG)
    return result


def request(models: dict[str, Estimator], model: str, **fields: Any) -> Request:
    return Request(instance_id=1, instance_name="i", estimator=models[model], **fields)


def placed(result: Placement | Unschedulable) -> Placement:
    assert isinstance(result, Placement), getattr(result, "message", result)
    return result


def place_replicas(
    models: dict[str, Estimator], snapshot: ClusterSnapshot, model: str, count: int, **fields: Any
) -> list[Placement]:
    placements = []
    for _ in range(count):
        placement = placed(schedule(request(models, model, **fields), snapshot))
        placements.append(placement)
        snapshot = snapshot.with_claim(placement.all_claims())
    return placements


def test_small_model_takes_one_gpu(models: dict[str, Estimator]) -> None:
    result = placed(schedule(request(models, "llama-3.1-8b"), cluster(h100x8("a"))))
    assert result.mode == Mode.SINGLE_GPU and result.device_ids == ("a:cuda:0",)
    assert result.offload_layers == result.total_layers == 33
    # The claim is the estimate for one GPU: ~8 GiB of weights + 1 GiB KV + scratch on the GPU,
    # the input embeddings (0.5 GiB) and buffers on the host.
    from gpufleet.estimate.config import Placement as LayerPlacement

    estimate = models["llama-3.1-8b"].estimate(LayerPlacement(gpus=1))
    assert result.claim.vram == {"a:cuda:0": estimate.vram[0]} and result.claim.ram == estimate.ram
    assert 8 * GiB < estimate.vram[0] < 10 * GiB and estimate.ram < 2 * GiB


def test_spread_uses_other_workers_then_other_gpus(models: dict[str, Estimator]) -> None:
    # Spread: replica 1 → a:cuda:0 (all idle; names break ties). Replica 2: a's other GPUs are idle
    # but worker a is busier than b → b:cuda:0. Replica 3: both workers equally busy → a:cuda:1.
    snapshot = cluster(h100x8("a"), h100x8("b"))
    devices = [p.device_ids[0] for p in place_replicas(models, snapshot, "llama-3.1-8b", 3)]
    assert devices == ["a:cuda:0", "b:cuda:0", "a:cuda:1"]


def test_binpack_fills_one_gpu_first(models: dict[str, Estimator]) -> None:
    # Binpack: the fullest GPU that still fits. 79 GiB free / ~8.9 GiB per replica = 8 on a:cuda:0,
    # the 9th moves to the next GPU.
    snapshot = cluster(h100x8("a"), h100x8("b"))
    devices = [
        p.device_ids[0] for p in place_replicas(models, snapshot, "llama-3.1-8b", 9, placement_strategy="binpack")
    ]
    assert devices[:8] == ["a:cuda:0"] * 8
    assert devices[8] != "a:cuda:0" and devices[8].startswith("a:")


def test_70b_f16_takes_the_fewest_gpus_of_one_worker(models: dict[str, Estimator]) -> None:
    result = placed(schedule(request(models, "llama-3.1-70b"), cluster(h100x8("a"))))
    assert result.mode == Mode.MULTI_GPU and len(result.device_ids) == 2
    assert set(result.claim.vram) == set(result.device_ids)
    assert all(amount <= 79 * GiB for amount in result.claim.vram.values())


def test_405b_spans_two_workers_over_rpc(models: dict[str, Estimator]) -> None:
    result = placed(schedule(request(models, "llama-3.1-405b"), cluster(h100x8("a"), h100x8("b"), h100x8("c"))))
    assert result.mode == Mode.DISTRIBUTED and len(result.subordinates) == 1  # two hosts, not three
    devices = [*result.device_ids, *result.subordinates[0].device_ids]
    assert len(devices) == 16
    assert sum(result.all_claims().values()) > 756 * GiB
    refused = schedule(request(models, "llama-3.1-405b", distributed=False), cluster(h100x8("a"), h100x8("b")))
    assert isinstance(refused, Unschedulable)


def test_too_big_without_cpu_offloading_says_what_would_help(models: dict[str, Estimator]) -> None:
    snapshot = cluster(rtx4090x4("g1"), rtx4090x4("g2"))
    result = schedule(request(models, "llama-3.1-70b", distributed=False), snapshot)
    assert isinstance(result, Unschedulable)
    # 4 × 23 GiB free per worker < 133.5 GiB: nothing fits on GPUs; with offloading, most layers on GPU.
    assert result.message.startswith("0/2 workers fit: 2 insufficient VRAM (needs 13")
    assert "largest free 23.0 GiB" in result.message
    assert "enabling CPU offloading would let it run on g1 (" in result.message
    offloaded = placed(schedule(request(models, "llama-3.1-70b", distributed=False, cpu_offloading=True), snapshot))
    assert offloaded.mode == Mode.PARTIAL_OFFLOAD and 0 < offloaded.offload_layers < 81
    assert len(offloaded.device_ids) == 4


def test_cpu_only_workers(models: dict[str, Estimator]) -> None:
    snapshot = cluster(cpu_only("c1", 64 * GiB))
    refused = schedule(request(models, "llama-3.1-8b"), snapshot)
    assert isinstance(refused, Unschedulable)
    assert refused.message == (
        "0/1 workers fit: 1 no GPU (enable CPU offloading to use the CPU); enabling CPU "
        "offloading would let it run on c1 (on its CPU only)"
    )
    cpu = placed(schedule(request(models, "llama-3.1-8b", cpu_offloading=True), snapshot))
    assert cpu.mode == Mode.CPU and cpu.device_ids == ("c1:cpu:0",) and cpu.claim.vram == {}
    too_big = schedule(request(models, "llama-3.1-70b", cpu_offloading=True), snapshot)
    assert isinstance(too_big, Unschedulable) and "1 insufficient RAM" in too_big.message


@pytest.mark.parametrize(
    ("workers", "fields", "message"),
    [
        (
            [h100x8("a", state="not_ready"), h100x8("b", state="maintenance")],
            {},
            "0/2 workers fit: 1 in maintenance, 1 not ready",
        ),
        (
            [h100x8("a", labels={"gpu": "h100"}), rtx4090x4("b", labels={"gpu": "4090"})],
            {"worker_selector": {"gpu": "a100"}},
            "0/2 workers fit: 2 not matching worker_selector gpu=a100",
        ),
        (
            [h100x8("a")],
            {"avoid": {"a": "engine failed 3 times"}},
            "0/1 workers fit: 1 avoided after engine failures: engine failed 3 times",
        ),
        ([], {}, "no workers have joined yet"),
    ],
)
def test_reasons_are_summarised(
    models: dict[str, Estimator], workers: list[Any], fields: dict[str, Any], message: str
) -> None:
    result = schedule(request(models, "llama-3.1-8b", **fields), cluster(*workers))
    assert isinstance(result, Unschedulable) and result.message == message


def test_worker_selector_picks_the_matching_worker(models: dict[str, Estimator]) -> None:
    snapshot = cluster(h100x8("a", labels={"gpu": "h100"}), rtx4090x4("b", labels={"gpu": "4090"}))
    result = placed(schedule(request(models, "llama-3.1-8b", worker_selector={"gpu": "4090"}), snapshot))
    assert result.worker.name == "b"


@pytest.mark.parametrize(
    ("selected", "mode", "hosts"),
    [
        (("a:cuda:3",), Mode.SINGLE_GPU, 1),
        (("a:cuda:1", "a:cuda:2"), Mode.MULTI_GPU, 1),
        (("a:cuda:0", "b:cuda:0"), Mode.DISTRIBUTED, 2),
        (("a:cpu:0", "b:cpu:0"), Mode.DISTRIBUTED, 2),
    ],
)
def test_gpu_selector_decides_the_mode(
    models: dict[str, Estimator], selected: tuple[str, ...], mode: Mode, hosts: int
) -> None:
    snapshot = cluster(h100x8("a"), h100x8("b"))
    result = placed(schedule(request(models, "llama-3.1-8b", gpu_selector=selected), snapshot))
    assert result.mode == mode and 1 + len(result.subordinates) == hosts
    assert sorted([*result.device_ids, *(d for s in result.subordinates for d in s.device_ids)]) == sorted(selected)


def test_a_hand_picked_gpu_is_not_overfilled(models: dict[str, Estimator]) -> None:
    # 79 GiB free on a:cuda:3: 8 replicas of ~8.9 GiB fit, the 9th does not.
    snapshot = cluster(h100x8("a"))
    for _ in range(8):
        placement = placed(schedule(request(models, "llama-3.1-8b", gpu_selector=("a:cuda:3",)), snapshot))
        snapshot = snapshot.with_claim(placement.all_claims())
    ninth = schedule(request(models, "llama-3.1-8b", gpu_selector=("a:cuda:3",)), snapshot)
    assert isinstance(ninth, Unschedulable) and "selected devices too small" in ninth.message


def test_unified_memory_shares_the_pool(models: dict[str, Estimator]) -> None:
    # M2 Ultra: 192 GiB shared. A 70B Q4_0 (~40 GiB) fits on the GPU; each replica also takes host RAM
    # from the same pool, so the pool empties from both sides: at most 4 replicas.
    snapshot = cluster(m2_ultra("mac"))
    count = 0
    while count < 10:
        result = schedule(request(models, "llama-3.1-70b-q4"), snapshot)
        if isinstance(result, Unschedulable):
            break
        assert result.mode == Mode.SINGLE_GPU and result.device_ids == ("mac:metal:0",)
        snapshot = snapshot.with_claim(result.all_claims())
        count += 1
    assert count == 4


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 12),
    strategy=st.sampled_from(["spread", "binpack"]),
    model=st.sampled_from(["llama-3.1-8b", "llama-3.1-70b"]),
    offloading=st.booleans(),
)
def test_no_device_is_ever_overcommitted(
    models: dict[str, Estimator], count: int, strategy: str, model: str, offloading: bool
) -> None:
    base = cluster(h100x8("a"), rtx4090x4("b"), worker("c", [("cuda", "L4", 24 * GiB)], 32 * GiB))
    snapshot = base
    for _ in range(count):
        result = schedule(request(models, model, placement_strategy=strategy, cpu_offloading=offloading), snapshot)
        again = schedule(request(models, model, placement_strategy=strategy, cpu_offloading=offloading), snapshot)
        assert result == again  # deterministic for the same snapshot
        if isinstance(result, Unschedulable):
            break
        for device_id, amount in result.all_claims().items():
            device = snapshot.device(device_id)
            assert device is not None and amount <= snapshot.free(device)
        snapshot = snapshot.with_claim(result.all_claims())
    for device_worker in base.workers:
        for device in device_worker.devices:
            usable = device.memory_total - device.reserved
            assert snapshot.claimed(device) <= usable  # claims add up, never past what can be given
