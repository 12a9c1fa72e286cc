"""llama-server's flag grammar: the settings a deployment runs with, derived once from its spec.

The scheduler estimates memory for exactly these settings, and the worker starts llama-server
with them: both call ``run_config_for``. ``backend_parameters`` may change the memory-relevant
ones (slots, context, cache types, batch sizes, flash attention, the load mode's mmap). Only the flags of the
allow-list (``llama_cpp_allowed``) are accepted; the ones the placement decides
(``PLACEMENT_FLAGS``) are refused with a message that says what to use instead, since a user
value would contradict where the instance was put, and ``-c`` is refused next to ``ctx_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpufleet.common.errors import InvalidInput
from gpufleet.engines.llama_cpp_allowed import ALLOWED_NAMES, BY_SPELLING
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
    "-kvu": ("kv_unified", True),
    "--kv-unified": ("kv_unified", True),
    "-no-kvu": ("kv_unified", False),
    "--no-kv-unified": ("kv_unified", False),
    "--swa-full": ("swa_full", True),
}


# ``--load-mode``: whether the model file is memory-mapped (what the estimate needs); the flag itself
# is passed on as given (mlock, direct I/O are llama.cpp's business). llama.cpp has no --no-mmap now.
LOAD_MODE_FLAGS = ("-lm", "--load-mode")
LOAD_MODES = {"auto": True, "mmap": True, "mmap+mlock": True, "none": False, "mlock": False, "dio": False}

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


def split_parameters(parameters: Sequence[str]) -> list[str]:
    """The tokens of ``backend_parameters``: each entry is a flag, a value, ``--flag value`` or
    ``--flag=value`` (split at whichever of ``=`` and a space comes first, so a value may hold either)."""
    tokens: list[str] = []
    for parameter in parameters:
        if not parameter.strip():
            raise BackendParameterError("contains an empty parameter")
        text = parameter.strip() if parameter.strip().startswith("-") else parameter
        cut = [i for i in (text.find("="), text.find(" ")) if i > 0] if text.startswith("-") else []
        if cut:
            at = min(cut)
            tokens += [text[:at], text[at + 1 :].strip()]
        else:
            tokens.append(text)
    return tokens


def _refused(flag: str) -> BackendParameterError:
    if flag in PLACEMENT_FLAGS:
        return BackendParameterError(
            f"{flag} is set by gpufleet from the placement (layers, devices, ports, model kind); "
            "use gpu_selector, ctx_size or cpu_offloading instead"
        )
    if not flag.startswith("-"):
        return BackendParameterError(f"{flag!r} follows no flag that takes a value")
    return BackendParameterError(f"{flag} is not an allowed llama.cpp flag; allowed: {ALLOWED_NAMES}")


def flag_pairs(parameters: Sequence[str]) -> list[tuple[str, str | None]]:
    """``backend_parameters`` as (flag, value or None) pairs, refusing any flag not on the allow-list
    (``llama_cpp_allowed``) by name."""
    tokens = split_parameters(parameters)
    pairs: list[tuple[str, str | None]] = []
    index = 0
    while index < len(tokens):
        spelling = tokens[index]
        flag = BY_SPELLING.get(spelling)
        if flag is None:
            raise _refused(spelling)
        if not flag.takes_value:
            pairs.append((spelling, None))
            index += 1
            continue
        if index + 1 >= len(tokens):
            raise BackendParameterError(f"backend parameter {spelling} needs a value")
        pairs.append((spelling, tokens[index + 1]))
        index += 2
    return pairs


def check_backend_parameters(ctx_size: int | None, parameters: Sequence[str]) -> None:
    """Everything a deployment's flags must satisfy: allowed, well-formed, not contradicting ``ctx_size``."""
    pairs = flag_pairs(parameters)
    if ctx_size is not None:
        for spelling, _ in pairs:
            if VALUE_FLAGS.get(spelling, ("",))[0] == "ctx_size":
                raise BackendParameterError(
                    f"{spelling} conflicts with ctx_size (both set the context size): set only one of them"
                )
    run_config_for(ctx_size, parameters)


def parse_backend_parameters(parameters: Sequence[str]) -> dict[str, Any]:
    """The memory-relevant settings among llama-server flags (``--flag value`` or ``--flag=value``)."""
    settings: dict[str, Any] = {}
    for flag, raw in flag_pairs(parameters):
        if flag in SWITCHES:
            field, value = SWITCHES[flag]
            settings[field] = value
        elif flag in LOAD_MODE_FLAGS and raw is not None:
            if raw not in LOAD_MODES:
                raise BackendParameterError(f"{flag} takes one of {', '.join(LOAD_MODES)}, not {raw!r}")
            settings["mmap"] = LOAD_MODES[raw]
        elif flag in VALUE_FLAGS and raw is not None:
            field, kind = VALUE_FLAGS[flag]
            if field == "flash_attn":
                if raw not in TRUTHY + FALSEY + AUTO:
                    raise BackendParameterError(f"{flag} takes on, off or auto, not {raw!r}")
                settings[field] = raw not in FALSEY
            else:
                try:
                    settings[field] = kind(raw)
                except ValueError:
                    raise BackendParameterError(f"{flag} needs a number, not {raw!r}") from None
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
