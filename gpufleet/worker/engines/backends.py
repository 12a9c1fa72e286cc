"""Which llama.cpp build backend fits this machine: CUDA, HIP (AMD), Metal or CPU.

CUDA needs both a toolkit (``nvcc``) and an NVIDIA GPU; the build targets the
compute capabilities of the GPUs present. CUDA 13 dropped the architectures
before Turing (compute capability 7.5); where such a GPU is present and only a
CUDA 13 toolkit is installed, we say which toolkit is needed instead of failing
in the middle of a build.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from gpufleet.schemas.devices import DeviceType
from gpufleet.worker.devices.amd import AmdDetector
from gpufleet.worker.devices.base import DetectionError
from gpufleet.worker.devices.nvidia import NvidiaDetector
from gpufleet.worker.engines.base import EngineUnavailable

OLDEST_CC_BY_CUDA_MAJOR = {13: (7, 5), 12: (5, 0), 11: (3, 5)}


class BackendUnavailable(EngineUnavailable):
    """The hardware needs a toolkit this machine lacks (or has in an unusable version)."""


@dataclass(frozen=True)
class BuildBackend:
    name: str  # cpu | cuda | hip | metal
    cmake_flags: list[str] = field(default_factory=list)
    detail: str = ""


def nvcc_version() -> tuple[int, int] | None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        output = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"release (\d+)\.(\d+)", output)
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_backend(capabilities: list[str], toolkit: tuple[int, int] | None) -> BuildBackend:
    """CMake flags for the NVIDIA GPUs present, e.g. ``["8.9", "9.0"]`` → ``-DCMAKE_CUDA_ARCHITECTURES=89;90``."""
    if toolkit is None:
        raise BackendUnavailable(
            "NVIDIA GPUs are present but no CUDA toolkit (nvcc) was found: install the CUDA toolkit to build "
            "llama.cpp for them, or use --llama-server-path with a CUDA build you already have"
        )
    oldest_supported = OLDEST_CC_BY_CUDA_MAJOR.get(toolkit[0], (5, 0))
    parsed = sorted({tuple(int(p) for p in cc.split(".")[:2]) for cc in capabilities if re.match(r"^\d+\.\d+$", cc)})
    too_old = [cc for cc in parsed if cc < oldest_supported]
    if too_old:
        old = ", ".join(f"{a}.{b}" for a, b in too_old)
        raise BackendUnavailable(
            f"CUDA {toolkit[0]}.{toolkit[1]} cannot build for compute capability {old} (it supports "
            f"{oldest_supported[0]}.{oldest_supported[1]} and newer): install CUDA 12.x to serve these GPUs"
        )
    architectures = ";".join(f"{a}{b}" for a, b in parsed) or "native"
    return BuildBackend(
        "cuda",
        ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_ARCHITECTURES={architectures}"],
        f"CUDA {toolkit[0]}.{toolkit[1]} for compute capability {architectures}",
    )


def detect_backend() -> BuildBackend:
    if sys.platform == "darwin":
        metal = platform.machine() == "arm64"
        return BuildBackend("metal" if metal else "cpu", ["-DGGML_METAL=ON" if metal else "-DGGML_METAL=OFF"])
    try:
        nvidia = [d for d in NvidiaDetector().detect() if d.type == DeviceType.CUDA]
    except DetectionError:
        nvidia = []
    if nvidia:
        return cuda_backend([d.compute_capability or "" for d in nvidia], nvcc_version())
    try:
        amd = [d for d in AmdDetector().detect() if d.type == DeviceType.ROCM]
    except DetectionError:
        amd = []
    if amd:
        if shutil.which("hipcc") is None:
            raise BackendUnavailable(
                "AMD GPUs are present but ROCm's hipcc was not found: install ROCm to build for them"
            )
        targets = ";".join(sorted({d.compute_capability for d in amd if d.compute_capability}))
        flags = ["-DGGML_HIP=ON"] + ([f"-DAMDGPU_TARGETS={targets}"] if targets else [])
        return BuildBackend("hip", flags, f"ROCm for {targets or 'the GPUs present'}")
    return BuildBackend("cpu", [], "CPU")
