"""Where the model hubs are: ``$HF_ENDPOINT`` and ``$MODELSCOPE_ENDPOINT`` (a mirror), else the hubs
themselves. Read at call time, by the server (estimates, format choice) and the workers (downloads)
alike, so one setting points both at a mirror."""

from __future__ import annotations

import os

HF_DEFAULT = "https://huggingface.co"
MODELSCOPE_DEFAULT = "https://modelscope.cn"


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HF_DEFAULT).rstrip("/")


def modelscope_endpoint() -> str:
    return os.environ.get("MODELSCOPE_ENDPOINT", MODELSCOPE_DEFAULT).rstrip("/")
