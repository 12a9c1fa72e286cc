"""The peer to beat: GPUStack's gguf-parser (v0.11, bundled in the ``gpustack==0.3.0`` wheel).

Fetched once with pip into the cache; the binary is run with the same settings as the
llama-server run it is compared with. Returns None where the wheel or binary is unavailable
(e.g. not x86-64 Linux), and the benchmark says so.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from gpufleet.common.paths import cache_dir

WHEEL_VERSION = "0.3.0"
MEMBER = "gpustack/third_party/bin/gguf-parser/gguf-parser-linux-amd64"


def gguf_parser() -> Path | None:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    target = cache_dir() / "peers" / f"gguf-parser-gpustack-{WHEEL_VERSION}"
    if target.exists():
        return target
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = list(downloads.glob(f"gpustack-{WHEEL_VERSION}-*.whl"))
    if not wheels:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"gpustack=={WHEEL_VERSION}",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                str(downloads),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(downloads.glob(f"gpustack-{WHEEL_VERSION}-*.whl"))
        if result.returncode != 0 or not wheels:
            return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        target.write_bytes(wheel.read(MEMBER))
    target.chmod(0o755)
    return target


def estimate(
    binary: Path,
    model: Path,
    *,
    ctx: int,
    parallel: int,
    ubatch: int,
    batch: int,
    flash_attn: bool,
    cache_type: str,
    gpu_layers: int,
    tensor_split: list[float] | None,
    rpc: int,
    embedding: bool,
) -> tuple[int, list[int]] | None:
    """(host bytes, bytes per device) as gguf-parser estimates them (its non-UMA figures)."""
    command = [
        str(binary),
        "--path",
        str(model),
        "--json",
        "--skip-tokenizer",
        "--ctx-size",
        str(ctx),
        "--parallel-size",
        str(parallel),
        "--ubatch-size",
        str(ubatch),
        "--batch-size",
        str(batch),
        "--cache-type-k",
        cache_type,
        "--cache-type-v",
        cache_type,
        "--gpu-layers",
        str(gpu_layers),
    ]
    if flash_attn:
        command.append("--flash-attention")
    if tensor_split:
        command += ["--tensor-split", ",".join(str(int(x * 100)) for x in tensor_split)]
    if rpc:
        command += ["--rpc", ",".join(f"127.0.0.1:{50000 + i}" for i in range(rpc))]
    del embedding  # gguf-parser v0.11 has no embedding mode: it estimates encoders like any model
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        return None
    try:
        item: dict[str, Any] = json.loads(result.stdout)["estimate"]["items"][0]
    except (ValueError, KeyError, IndexError):
        return None
    host = int(item["ram"]["nonuma"])
    devices = [int(v["nonuma"]) for v in item.get("vrams", [])]
    return host, devices
