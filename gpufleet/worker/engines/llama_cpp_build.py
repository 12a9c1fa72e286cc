"""Build llama.cpp's ``llama-server`` and ``ggml-rpc-server`` from source, once per machine.

No prebuilt llama.cpp binary for every platform is on the package registries, but
the ``llama-cpp-python`` source distribution vendors a pinned llama.cpp. We fetch
that sdist with pip (so it works wherever pip works, proxies and mirrors included),
build the two servers with CMake (static, RPC on, tests/examples/web UI off, the
backend that fits the machine), and keep them under
``<cache>/engines/llama.cpp/<version>/<backend>/bin``. Later calls find them there, as long as
they were built with the CMake flags this machine needs now (``cmake_flags``): a build made
before a flag changed (for instance the AMX fix of ``cpu_features``) is built again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from gpufleet.common.paths import cache_dir
from gpufleet.worker.engines.backends import BuildBackend, detect_backend
from gpufleet.worker.engines.base import EngineUnavailable
from gpufleet.worker.engines.cpu_features import unusable_isa_flags

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # pins the llama.cpp source we build and estimate for
SERVER_BINARY = "llama-server"
RPC_BINARIES = ("ggml-rpc-server", "rpc-server")  # newer llama.cpp, older llama.cpp
TARGETS = ("llama-server", "ggml-rpc-server")
BASE_CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_RPC=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # would download the web UI at build time
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=ON",  # the cache is per machine, so optimise for this CPU
]
PROGRESS = re.compile(r"^\[\s*(\d+)%\]")

Progress = Callable[[str, float | None], None]  # (what is happening, percent done or None)


class BuildError(EngineUnavailable):
    """The build failed; the message says which step and ends with the tool's last output lines."""


@dataclass(frozen=True)
class LlamaCppBuild:
    version: str
    backend: str
    llama_cpp_commit: str
    bin_dir: str
    cmake_flags: list[str]
    built_at: float

    @property
    def llama_server(self) -> Path:
        return Path(self.bin_dir) / SERVER_BINARY

    @property
    def rpc_server(self) -> Path:
        return Path(self.bin_dir) / RPC_BINARIES[0]


def engines_dir() -> Path:
    return cache_dir() / "engines" / "llama.cpp"


def installed_builds() -> list[LlamaCppBuild]:
    builds = []
    for info in sorted(engines_dir().glob("*/*/build-info.json")):
        try:
            build = LlamaCppBuild(**json.loads(info.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if build.llama_server.exists() and build.rpc_server.exists():
            builds.append(build)
    return builds


def cmake_flags(backend: BuildBackend) -> list[str]:
    """Every CMake flag of a build for ``backend`` on this machine."""
    return [*BASE_CMAKE_FLAGS, *unusable_isa_flags(), *backend.cmake_flags]


def find_build(backend: BuildBackend, version: str = LLAMA_CPP_PYTHON_VERSION) -> LlamaCppBuild | None:
    """The installed build for ``backend``, if it was made with the flags this machine needs now."""
    flags = cmake_flags(backend)
    for build in installed_builds():
        if build.version == version and build.backend == backend.name and build.cmake_flags == flags:
            return build
    return None


def _run(
    step: str, command: list[str], progress: Progress, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    """Run one build step, streaming its percentage to ``progress``; keeps the output tail for errors."""
    tail: list[str] = []
    try:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
    except OSError as exc:
        raise BuildError(f"{step}: cannot run {command[0]}: {exc.strerror}") from exc
    assert process.stdout is not None
    for line in process.stdout:
        tail = [*tail[-40:], line.rstrip()]
        match = PROGRESS.match(line)
        progress(step, float(match.group(1)) if match else None)
    if process.wait() != 0:
        raise BuildError(f"{step} failed (exit {process.returncode}):\n" + "\n".join(tail[-25:]))
    return "\n".join(tail)


def fetch_source(work: Path, version: str, progress: Progress) -> Path:
    """Download and unpack the llama-cpp-python sdist; returns its vendored llama.cpp directory."""
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / f"llama_cpp_python-{version}.tar.gz"
    if not archive.exists():
        _run(
            "downloading the llama.cpp source (llama-cpp-python sdist)",
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"llama-cpp-python=={version}",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                str(downloads),
            ],
            progress,
        )
    if not archive.exists():
        raise BuildError(f"pip did not produce {archive.name}")
    progress("unpacking the source", None)
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    source = work / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").exists():
        raise BuildError(f"{archive.name} has no vendor/llama.cpp to build")
    return source


def source_commit(source: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def build_llama_cpp(
    progress: Progress,
    *,
    backend: BuildBackend | None = None,
    version: str = LLAMA_CPP_PYTHON_VERSION,
    jobs: int | None = None,
) -> LlamaCppBuild:
    """Build (or find already built) llama-server and ggml-rpc-server for this machine."""
    chosen = backend or detect_backend()
    existing = find_build(chosen, version)
    if existing is not None:
        return existing
    target = engines_dir() / version / chosen.name
    work = cache_dir() / "build" / f"llama.cpp-{version}-{chosen.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        source = fetch_source(work, version, progress)
        build_dir = work / "build"
        flags = cmake_flags(chosen)
        env = {**os.environ, "LLAMA_TELEMETRY": "0", "DO_NOT_TRACK": "1"}
        _run("configuring (cmake)", ["cmake", "-S", str(source), "-B", str(build_dir), *flags], progress, env=env)
        _run(
            f"compiling llama.cpp for {chosen.name} (several minutes, once per machine)",
            ["cmake", "--build", str(build_dir), "--target", *TARGETS, "-j", str(jobs or os.cpu_count() or 2)],
            progress,
            env=env,
        )
        bin_dir = target / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name in TARGETS:
            built = build_dir / "bin" / name
            if not built.exists():
                raise BuildError(f"the build finished without producing {name}")
            shutil.copy2(built, bin_dir / name)
        build = LlamaCppBuild(
            version=version,
            backend=chosen.name,
            llama_cpp_commit=source_commit(source),
            bin_dir=str(bin_dir),
            cmake_flags=flags,
            built_at=time.time(),
        )
        (target / "build-info.json").write_text(json.dumps(asdict(build), indent=2))
        return build
    finally:
        shutil.rmtree(work, ignore_errors=True)
