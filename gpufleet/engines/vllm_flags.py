"""vLLM's flag grammar as gpufleet accepts it: the run settings it sets itself, and an allow-list.

``backend_parameters`` reach a process that runs as the worker's user, so only tuning passes:
sampling and scheduling limits, cache and dtype choices, tool and reasoning parsers by name.
Refused by name, in particular, is what would

- run code or read files the deployment did not ship (``--trust-remote-code``, ``--middleware``,
  ``--chat-template`` (a path or a template), ``--tokenizer``, ``--load-format``, ``--worker-cls``…),
- open ports, endpoints or outbound connections (``--host``, ``--port``, ``--otlp-traces-endpoint``),
- change keys (``--api-key``, ``--ssl-keyfile``),
- contradict the placement: devices and parallelism (``--tensor-parallel-size``,
  ``--pipeline-parallel-size``, ``--data-parallel-size``, ``--distributed-executor-backend``) and
  the memory vLLM may claim beyond ``--gpu-memory-utilization`` (``--kv-cache-memory-bytes``).

The three settings gpufleet always passes (``--max-model-len``, ``--dtype``,
``--gpu-memory-utilization``) may be given and become the run settings (``VllmRunConfig``);
``--max-model-len`` next to the deployment's ``ctx_size`` is a conflict. vLLM accepts ``_`` for
``-`` in flag names; both spellings are taken and passed on with dashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpufleet.engines.llama_cpp_flags import BackendParameterError, split_parameters

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's own default: the fraction of each GPU it claims
DEFAULT_DTYPE = "auto"  # the checkpoint's dtype (bfloat16 stays bfloat16; float32 → float16 on GPUs)
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")

# Value flags gpufleet reads into the run settings (and passes itself).
RUN_FLAGS = {
    "--max-model-len": "max_model_len",
    "--dtype": "dtype",
    "--gpu-memory-utilization": "gpu_memory_utilization",
}

ALLOWED_VALUE_FLAGS = frozenset(
    {
        "--kv-cache-dtype",
        "--max-num-seqs",
        "--max-num-batched-tokens",
        "--block-size",
        "--quantization",
        "-q",
        "--seed",
        "--max-logprobs",
        "--tokenizer-mode",
        "--reasoning-parser",
        "--tool-call-parser",
        "--chat-template-content-format",
        "--override-generation-config",
        "--limit-mm-per-prompt",
        "--cpu-offload-gb",
        "--scheduling-policy",
        "--long-prefill-token-threshold",
    }
)
ALLOWED_SWITCHES = frozenset(
    {
        "--enforce-eager",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--enable-chunked-prefill",
        "--no-enable-chunked-prefill",
        "--enable-auto-tool-choice",
        "--disable-log-stats",
        "--disable-sliding-window",
        "--disable-cascade-attn",
    }
)
# Set by gpufleet from the deployment and the placement: a user value would contradict them.
PLACEMENT_FLAGS = frozenset(
    {
        "--model",
        "--served-model-name",
        "--host",
        "--port",
        "--api-key",
        "--tensor-parallel-size",
        "-tp",
        "--pipeline-parallel-size",
        "-pp",
        "--data-parallel-size",
        "-dp",
        "--distributed-executor-backend",
        "--device-ids",
        "--kv-cache-memory-bytes",
        "--device-memory-utilization",
    }
)
ALLOWED_NAMES = ", ".join(sorted({*RUN_FLAGS, *ALLOWED_VALUE_FLAGS, *ALLOWED_SWITCHES}))


@dataclass(frozen=True)
class VllmRunConfig:
    """What an instance runs with: the estimate's inputs and the launch's flags."""

    max_model_len: int | None = None  # None: the model's own (config.json)
    dtype: str = DEFAULT_DTYPE
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    extra: tuple[str, ...] = ()  # the allowed rest of backend_parameters, in order, dashes normalised


def _flag_name(token: str) -> str:
    """``--max_model_len`` → ``--max-model-len`` (vLLM's parser takes both)."""
    return "--" + token[2:].replace("_", "-") if token.startswith("--") else token


def _refused(flag: str) -> BackendParameterError:
    if flag in PLACEMENT_FLAGS:
        return BackendParameterError(
            f"{flag} is set by gpufleet from the deployment and its placement; "
            "use gpu_selector, replicas or ctx_size instead"
        )
    if not flag.startswith("-"):
        return BackendParameterError(f"{flag!r} follows no flag that takes a value")
    return BackendParameterError(f"{flag} is not allowed in backend_parameters for vllm (allowed: {ALLOWED_NAMES})")


def _run_value(field: str, flag: str, value: str) -> int | float | str:
    try:
        if field == "max_model_len":
            number = int(value)
            if number < 1:
                raise ValueError
            return number
        if field == "gpu_memory_utilization":
            fraction = float(value)
            if not 0.0 < fraction <= 1.0:
                raise ValueError
            return fraction
    except ValueError:
        kind = "a whole number of tokens" if field == "max_model_len" else "a fraction in (0, 1]"
        raise BackendParameterError(f"{flag} needs {kind}, not {value!r}") from None
    if value not in DTYPES:
        raise BackendParameterError(f"{flag} must be one of {', '.join(DTYPES)}, not {value!r}")
    return value


def vllm_run_config(ctx_size: int | None, parameters: Sequence[str]) -> VllmRunConfig:
    """The run settings of a deployment. Raises ``BackendParameterError`` naming the flag to fix."""
    tokens = split_parameters(parameters)
    settings: dict[str, int | float | str] = {}
    extra: list[str] = []
    at = 0
    while at < len(tokens):
        flag = _flag_name(tokens[at])
        takes_value = flag in RUN_FLAGS or flag in ALLOWED_VALUE_FLAGS
        if not takes_value and flag not in ALLOWED_SWITCHES:
            raise _refused(flag)
        if not takes_value:
            extra.append(flag)
            at += 1
            continue
        if at + 1 >= len(tokens):
            raise BackendParameterError(f"{flag} needs a value")
        value = tokens[at + 1]
        if flag in RUN_FLAGS:
            settings[RUN_FLAGS[flag]] = _run_value(RUN_FLAGS[flag], flag, value)
        else:
            extra += [flag, value]
        at += 2
    if ctx_size is not None and "max_model_len" in settings:
        raise BackendParameterError("--max-model-len conflicts with ctx_size: set only ctx_size")
    if ctx_size is not None:
        settings["max_model_len"] = ctx_size
    return VllmRunConfig(
        max_model_len=int(settings["max_model_len"]) if "max_model_len" in settings else None,
        dtype=str(settings.get("dtype", DEFAULT_DTYPE)),
        gpu_memory_utilization=float(settings.get("gpu_memory_utilization", DEFAULT_GPU_MEMORY_UTILIZATION)),
        extra=tuple(extra),
    )
