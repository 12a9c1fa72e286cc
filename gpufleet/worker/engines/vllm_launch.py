"""How gpufleet runs vLLM for an instance: the exact command line and environment.

```
<venv>/bin/python -m vllm.entrypoints.openai.api_server --model <dir> --served-model-name <name>
  --host H --port P --tensor-parallel-size <GPUs> --dtype D [--max-model-len N]
  [--gpu-memory-utilization F]   <the allowed rest of backend_parameters>
```

- the instance's API key in the environment (``VLLM_API_KEY``, which vLLM reads when no
  ``--api-key`` is given), never on the command line; ``/health`` stays open for the worker's probe;
- what the scheduler decided is read from the claim (``InstancePublic.claim["engine"]``:
  ``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``kv_cache_bytes``),
  each falling back to the run settings (``VllmRunConfig``) where the claim has none (a claim
  written before vLLM was placed, or by hand in a test);
- GPUs pinned with ``CUDA_VISIBLE_DEVICES`` (the placement's device indexes, in order), and
  ``--tensor-parallel-size`` = the claim's, else their count; a CPU placement hides every GPU;
- on the CPU, the KV cache is sized by ``VLLM_CPU_KVCACHE_SPACE`` (GiB; vLLM would otherwise take
  a fraction of the machine's RAM), from the claim's ``kv_cache_bytes`` (rounded up to a GiB);
  a CPU engine's thread share goes to ``OMP_NUM_THREADS`` with vLLM's core binding off, so
  co-located engines do not pin the same cores;
- ``--gpu-memory-utilization`` only on GPUs: the claim's fraction, else the run settings';
- telemetry off, Hugging Face offline (the model is a local directory), no ``GPUFLEET_*`` variables;
- across workers (``ray_head`` given): ``--pipeline-parallel-size`` (the claim's, else one stage per
  worker) and ``--distributed-executor-backend ray``, joined to the instance's own Ray cluster through
  ``RAY_ADDRESS`` (its head, on this worker), with ``VLLM_HOST_IP`` the address other workers reach.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gpufleet.engines.vllm_flags import VllmRunConfig
from gpufleet.worker.engines.base import ServerLaunch
from gpufleet.worker.engines.ray_cluster import QUIET as RAY_QUIET
from gpufleet.worker.engines.vllm_install import ENTRY_POINT, QUIET_ENV

API_KEY_ENV = "VLLM_API_KEY"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
GIB = 1024**3
DEFAULT_CPU_KV_CACHE_GIB = 4  # until the scheduler's claim says (``kv_cache_bytes``)
HIDDEN_GPUS = {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}


def cuda_indexes(device_ids: Sequence[str]) -> list[str]:
    """``["w:cuda:2", "w:cuda:0"]`` → ``["2", "0"]``: the placement's GPUs, in its order."""
    return [d.rsplit(":", 1)[1] for d in device_ids if ":cuda:" in d]


def base_env() -> dict[str, str]:
    """The worker's environment less gpufleet's settings (tokens among them) and any vLLM key."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_") and k != API_KEY_ENV}
    return inherited | QUIET_ENV | OFFLINE_ENV


def engine_claim(claim: Mapping[str, Any]) -> Mapping[str, Any]:
    """The vLLM part of an instance's claim (``claim["engine"]``); empty when the claim has none."""
    engine = claim.get("engine")
    return engine if isinstance(engine, Mapping) else {}


def cpu_kv_cache_gib(engine: Mapping[str, Any]) -> int:
    claimed = engine.get("kv_cache_bytes")
    if claimed is None:
        return DEFAULT_CPU_KV_CACHE_GIB
    return max(1, math.ceil(int(claimed) / GIB))


def server_launch(
    python: Path,
    *,
    model_dir: Path,
    served_name: str,
    config: VllmRunConfig,
    claim: Mapping[str, Any],
    device_ids: Sequence[str],
    host: str,
    port: int,
    api_key: str,
    threads: int | None = None,
    ray_head: str | None = None,
    pipeline_stages: int = 1,
) -> ServerLaunch:
    """vLLM's OpenAI server for one instance; it answers only requests bearing ``api_key``."""
    gpus = cuda_indexes(device_ids)
    engine = engine_claim(claim)
    tensor_parallel = int(engine.get("tensor_parallel_size") or max(1, len(gpus)))
    max_model_len = engine.get("max_model_len") or config.max_model_len
    command = [
        str(python),
        "-m",
        ENTRY_POINT,
        "--model",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--host",
        host,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(tensor_parallel),
        "--dtype",
        config.dtype,
    ]
    if max_model_len is not None:
        command += ["--max-model-len", str(int(max_model_len))]
    env = base_env() | {API_KEY_ENV: api_key}
    if ray_head is not None:
        stages = int(engine.get("pipeline_parallel_size") or pipeline_stages)
        command += ["--pipeline-parallel-size", str(stages), "--distributed-executor-backend", "ray"]
        env |= RAY_QUIET | {"RAY_ADDRESS": ray_head, "VLLM_HOST_IP": host}
    if gpus:
        utilization = float(engine.get("gpu_memory_utilization") or config.gpu_memory_utilization)
        command += ["--gpu-memory-utilization", f"{utilization:g}"]
        env |= {"CUDA_VISIBLE_DEVICES": ",".join(gpus), "HIP_VISIBLE_DEVICES": ""}
    else:
        env |= HIDDEN_GPUS | {"VLLM_CPU_KVCACHE_SPACE": str(cpu_kv_cache_gib(engine))}
        if threads is not None:
            env |= {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(max(1, threads))}
    command += list(config.extra)
    return ServerLaunch(command, env)
