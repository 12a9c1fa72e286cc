"""How gpufleet runs llama.cpp for an instance: the exact llama-server (and ggml-rpc-server) command.

Everything memory-relevant comes from the deployment's run settings (``engines.llama_cpp_flags``),
the same ones the scheduler estimated, and from the placement's claim (layers on GPUs, tensor
split, RPC servers), so llama.cpp allocates what was planned:

- ``--fit off``: llama.cpp would otherwise resize unset parameters to the memory it sees free;
- ``--cache-ram 0``: its prompt cache could otherwise grow to 8 GiB of host RAM unplanned;
- ``--offline`` and telemetry switched off in the environment;
- ``-lv 4``: the log shows the layers and buffers on each device (local, RPC);
- ``--embeddings`` / ``--rerank`` for embedding and reranking models (from the GGUF header);
- ``-t``: a CPU engine's share of the worker's cores, so co-located CPU engines do not each take
  them all (unless ``backend_parameters`` set ``-t``);
- the user's other ``backend_parameters`` last (only flags of the allow-list, ``engines.llama_cpp_allowed``);
- the instance's engine API key in the environment (``LLAMA_API_KEY``), never on the command line:
  only the gateway, which presents it, is served.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpufleet.engines.llama_cpp_flags import SWITCHES, VALUE_FLAGS, flag_pairs
from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import ModelInfo, ModelKind
from gpufleet.worker.engines.base import ServerLaunch
from gpufleet.worker.engines.binaries import LlamaCppBinaries

# "trace": adds where each layer and buffer went (load_tensors, KV and compute buffers per device),
# what a person needs to see when memory runs short; the worker rotates the log (engines.process).
LOG_VERBOSITY = 4
QUIET_ENV = {"HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
# llama-server reads its ``--api-key`` from here (common/arg.cpp): a key on the command line would
# show in ``ps`` to every user of the machine; a process's environment is readable by its owner only.
API_KEY_ENV = "LLAMA_API_KEY"
VISIBLE_DEVICES = {"cuda": "CUDA_VISIBLE_DEVICES", "rocm": "HIP_VISIBLE_DEVICES"}
THREAD_FLAGS = ("-t", "--threads")


def user_parameters(parameters: Sequence[str]) -> list[str]:
    """``backend_parameters`` minus the memory-relevant ones (already part of the run settings).

    Raises ``BackendParameterError`` for a flag off the allow-list: a deployment stored before
    that flag was refused fails to start, saying which flag, instead of passing it on."""
    kept: list[str] = []
    for flag, value in flag_pairs(parameters):
        if flag in VALUE_FLAGS or flag in SWITCHES:
            continue
        kept += [flag] if value is None else [flag, value]
    return kept


def run_flags(config: RunConfig, n_ctx: int) -> list[str]:
    flags = [
        "-c",
        str(n_ctx),
        "-np",
        str(config.parallel),
        "-b",
        str(config.batch),
        "-ub",
        str(config.ubatch),
        "-ctk",
        config.cache_type_k,
        "-ctv",
        config.cache_type_v,
        "-fa",
        "on" if config.flash_attn else "off",
        "-kvu" if config.kv_unified else "-no-kvu",
    ]
    if config.swa_full:
        flags.append("--swa-full")
    return flags


def base_env() -> dict[str, str]:
    """The worker's environment for an engine, less gpufleet's own settings (tokens among them) and
    any llama.cpp setting (``LLAMA_ARG_*``, ``LLAMA_API_KEY``) that would override what gpufleet sets."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("GPUFLEET_", "LLAMA_ARG_", API_KEY_ENV))}
    return inherited | QUIET_ENV


def device_env(device_ids: Sequence[str]) -> dict[str, str]:
    """Pin the engine to its GPUs; with none (CPU placement), hide every GPU from it."""
    env = {name: "" for name in VISIBLE_DEVICES.values()}
    for kind, name in VISIBLE_DEVICES.items():
        indices = [d.rsplit(":", 1)[1] for d in device_ids if f":{kind}:" in d]
        if indices:
            env[name] = ",".join(indices)
    return env


def server_launch(
    binaries: LlamaCppBinaries,
    *,
    model_path: Path,
    alias: str,
    info: ModelInfo,
    config: RunConfig,
    claim: dict[str, Any],
    device_ids: Sequence[str],
    host: str,
    port: int,
    api_key: str,
    rpc_endpoints: Sequence[str] = (),
    backend_parameters: Sequence[str] = (),
    threads: int | None = None,
) -> ServerLaunch:
    """llama-server for one instance; it answers only requests bearing ``api_key`` (``/health`` stays open)."""
    n_ctx = Estimator(info, config).n_ctx  # the model's context when none is asked for, capped like the estimate
    command = [
        str(binaries.server),
        "-m",
        str(model_path),
        "--alias",
        alias,
        "--host",
        host,
        "--port",
        str(port),
        *run_flags(config, n_ctx),
        "-ngl",
        str(int(claim.get("offload_layers", 0))),
        "--fit",
        "off",
        "--cache-ram",
        "0",
        "--metrics",
        "--no-webui",
        "--offline",
        "-lv",
        str(LOG_VERBOSITY),
    ]
    split = claim.get("tensor_split") or []
    if len(split) > 1:
        command += ["-ts", ",".join(f"{float(x):g}" for x in split)]
    if rpc_endpoints:
        command += ["--rpc", ",".join(rpc_endpoints)]
    if info.kind == ModelKind.EMBEDDING:
        command.append("--embeddings")
    elif info.kind == ModelKind.RERANKER:
        command.append("--rerank")
    user = user_parameters(backend_parameters)
    if threads is not None and not any(token in THREAD_FLAGS for token in user):
        command += ["-t", str(max(1, threads))]  # the user's -t, if any, wins
    command += user
    env = base_env() | device_env(device_ids) | {API_KEY_ENV: api_key}
    return ServerLaunch(command, env)


def rpc_launch(
    binaries: LlamaCppBinaries, *, host: str, port: int, device_ids: Sequence[str], threads: int
) -> ServerLaunch:
    """A ggml-rpc-server lending this worker's devices (or its CPU) to another worker's instance.

    GPUs are pinned through the environment (the server then serves every GPU it sees); a CPU
    part names the CPU device and its thread count (the server's default is half the cores).
    """
    command = [str(binaries.rpc_server_or_fail()), "-H", host, "-p", str(port)]
    gpus = [d for d in device_ids if ":cpu:" not in d]
    if not gpus:
        command += ["-d", "CPU", "-t", str(max(1, threads))]
    return ServerLaunch(command, base_env() | device_env(gpus))
