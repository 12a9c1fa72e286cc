"""Process settings for the hub libraries: telemetry and progress bars off, endpoints from the environment.

``quiet()`` runs when the downloads package is imported, before ``huggingface_hub``,
``modelscope_hub`` or ``tqdm`` are (they read these variables at import time). It only sets what
the person running gpufleet has not set. Endpoints are read at call time, with the same variable
names as the server's estimator (``gpufleet/estimate/remote.py``), so one setting points both at
a mirror.
"""

from __future__ import annotations

import os

from gpufleet.common.hubs import hf_endpoint, modelscope_endpoint

__all__ = ["QUIET", "hf_endpoint", "modelscope_endpoint", "quiet"]

QUIET = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1",
    "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1",
    "TQDM_DISABLE": "1",  # the ModelScope SDK draws tqdm bars on the worker's stderr otherwise
}

OLLAMA_DEFAULT = "https://registry.ollama.ai"


def quiet() -> None:
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)


def ollama_registry() -> str:
    return os.environ.get("OLLAMA_REGISTRY", OLLAMA_DEFAULT).rstrip("/")
