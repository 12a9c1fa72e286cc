"""llama-server's flag grammar: the settings a deployment runs with, derived once from its spec.

The scheduler estimates memory for exactly these settings, and the worker starts llama-server
with them: both call ``run_config_for``. ``backend_parameters`` may change the memory-relevant
ones (slots, context, cache types, batch sizes, flash attention, mmap); the flags that the
placement decides (``PLACEMENT_FLAGS``) are refused, since a user value would contradict where
the instance was put.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpufleet.common.errors import InvalidInput
from gpufleet.estimate.config import RunConfig

DEFAULT_PARALLEL = 4  # llama-server's own "auto"

# flag spellings -> RunConfig field, and how to read the value
VALUE_FLAGS: dict[str, tuple[str, type]] = {
    "-np": ("parallel", int),
    "--parallel": ("parallel", int),
    "-c": ("ctx_size", int),
    "--ctx-size": ("ctx_size", int),
    "-b": ("batch", int),
    "--batch-size": ("batch", int),
    "-ub": ("ubatch", int),
    "--ubatch-size": ("ubatch", int),
    "-ctk": ("cache_type_k", str),
    "--cache-type-k": ("cache_type_k", str),
    "-ctv": ("cache_type_v", str),
    "--cache-type-v": ("cache_type_v", str),
    "-fa": ("flash_attn", str),
    "--flash-attn": ("flash_attn", str),
}
SWITCHES: dict[str, tuple[str, bool]] = {
    "--no-mmap": ("mmap", False),
    "--mmap": ("mmap", True),
    "-kvu": ("kv_unified", True),
    "--kv-unified": ("kv_unified", True),
    "-no-kvu": ("kv_unified", False),
    "--no-kv-unified": ("kv_unified", False),
    "--swa-full": ("swa_full", True),
}


# llama.cpp's spellings of a tri-state value (common/arg.cpp: is_truthy, is_falsey, is_autoy)
TRUTHY = ("on", "enabled", "true", "1")
FALSEY = ("off", "disabled", "false", "0")
AUTO = ("auto", "-1")


# Flags gpufleet sets from the placement: a user value would contradict where the instance was put.
PLACEMENT_FLAGS = frozenset(
    {
        "-m",
        "--model",
        "--host",
        "--port",
        "-a",
        "--alias",
        "-ngl",
        "--gpu-layers",
        "--n-gpu-layers",
        "-ts",
        "--tensor-split",
        "--rpc",
        "-dev",
        "--device",
        "-mg",
        "--main-gpu",
        "-sm",
        "--split-mode",
        "--fit",
        "-fit",
        "--embedding",
        "--embeddings",
        "--rerank",
        "--reranking",
    }
)


class BackendParameterError(InvalidInput, ValueError):
    """A backend parameter the engine cannot take as given (a bad value, or one the placement sets)."""

    code = "invalid_backend_parameter"


def check_placement_flags(parameters: Sequence[str]) -> None:
    """Refuse empty parameters and the flags the placement decides, saying what to use instead."""
    for parameter in parameters:
        if not parameter.strip():
            raise BackendParameterError("contains an empty parameter")
        flag = parameter.strip().split("=", 1)[0].split(None, 1)[0]
        if flag in PLACEMENT_FLAGS:
            raise BackendParameterError(
                f"{flag} is set by gpufleet from the placement (layers, devices, ports, model kind); "
                "use gpu_selector, ctx_size or cpu_offloading instead"
            )


def parse_backend_parameters(parameters: Sequence[str]) -> dict[str, Any]:
    """The memory-relevant settings among llama-server flags (``--flag value`` or ``--flag=value``)."""
    tokens: list[str] = []
    for parameter in parameters:
        tokens.extend(
            parameter.split("=", 1)
            if parameter.startswith("-") and "=" in parameter
            else parameter.split(None, 1)
            if parameter.startswith("-") and " " in parameter
            else [parameter]
        )
    settings: dict[str, Any] = {}
    index = 0
    while index < len(tokens):
        flag = tokens[index]
        if flag in SWITCHES:
            field, value = SWITCHES[flag]
            settings[field] = value
        elif flag in VALUE_FLAGS:
            field, kind = VALUE_FLAGS[flag]
            if index + 1 >= len(tokens):
                raise BackendParameterError(f"backend parameter {flag} needs a value")
            raw = tokens[index + 1]
            index += 1
            if field == "flash_attn":
                if raw not in TRUTHY + FALSEY + AUTO:
                    raise BackendParameterError(f"{flag} takes on, off or auto, not {raw!r}")
                settings[field] = raw not in FALSEY
            else:
                try:
                    settings[field] = kind(raw)
                except ValueError:
                    raise BackendParameterError(f"{flag} needs a number, not {raw!r}") from None
        index += 1
    return settings


def run_config_for(ctx_size: int | None, backend_parameters: Sequence[str]) -> RunConfig:
    settings: dict[str, Any] = {"parallel": DEFAULT_PARALLEL, "kv_unified": True}
    settings.update(parse_backend_parameters(backend_parameters))
    if ctx_size is not None:
        settings["ctx_size"] = ctx_size
    try:
        return RunConfig(**settings)
    except ValueError as exc:
        raise BackendParameterError(str(exc)) from exc
