"""Finding the llama.cpp binaries a worker runs: given paths, then PATH, then gpufleet's build cache;
building them (``gpufleet engines install``) when none is found.

Newer llama.cpp names the RPC server ``ggml-rpc-server``, older ``rpc-server``: either is accepted.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from gpufleet.worker.engines.backends import BackendUnavailable
from gpufleet.worker.engines.base import EngineUnavailable
from gpufleet.worker.engines.llama_cpp_build import (
    RPC_BINARIES,
    SERVER_BINARY,
    BuildError,
    build_llama_cpp,
    installed_builds,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LlamaCppBinaries:
    server: Path
    rpc_server: Path | None  # None: this worker can serve, but not lend devices over RPC
    version: str  # what the worker reports, e.g. "b0c1e57 (cpu)"

    def rpc_server_or_fail(self) -> Path:
        if self.rpc_server is None:
            raise EngineUnavailable(
                f"no ggml-rpc-server (or rpc-server) next to {self.server}, on PATH or in gpufleet's build cache: "
                "give --rpc-server-path, or run 'gpufleet engines install llama.cpp'"
            )
        return self.rpc_server


_build_lock = threading.Lock()  # one build per process: concurrent instances wait for it, not redo it


def _executable(path: Path | None) -> Path | None:
    return path if path is not None and path.is_file() and os.access(path, os.X_OK) else None


def _version_of(server: Path) -> str:
    try:
        output = subprocess.run([str(server), "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (output.stdout + output.stderr).strip().splitlines()
    line = next((x for x in text if "version" in x.lower()), text[0] if text else "unknown")
    return line.strip()[:80]


def find(server_path: Path | None = None, rpc_path: Path | None = None) -> LlamaCppBinaries | None:
    if server_path is not None or rpc_path is not None:
        server, rpc = _executable(server_path), _executable(rpc_path)
        if server is None:
            raise EngineUnavailable(f"--llama-server-path {server_path} is not an executable file")
        if rpc_path is not None and rpc is None:
            raise EngineUnavailable(f"--rpc-server-path {rpc_path} is not an executable file")
        rpc = rpc or next((p for p in (server.parent / n for n in RPC_BINARIES) if _executable(p)), None)
        rpc = rpc or _rpc_on_path() or next((b.rpc_server for b in reversed(installed_builds())), None)
        return LlamaCppBinaries(server, rpc, _version_of(server))
    on_path = shutil.which(SERVER_BINARY)
    rpc_on_path = _rpc_on_path()
    if on_path and rpc_on_path:
        return LlamaCppBinaries(Path(on_path), Path(rpc_on_path), _version_of(Path(on_path)))
    builds = installed_builds()
    if builds:
        build = builds[-1]
        return LlamaCppBinaries(build.llama_server, build.rpc_server, f"{build.llama_cpp_commit} ({build.backend})")
    return None


def _rpc_on_path() -> Path | None:
    found = next((shutil.which(n) for n in RPC_BINARIES if shutil.which(n)), None)
    return Path(found) if found else None


def find_or_build(server_path: Path | None = None, rpc_path: Path | None = None) -> LlamaCppBinaries:
    """The binaries, building llama.cpp for this machine if there are none (minutes, once). Blocking.

    Callers in one process share one build: a second caller waits for the first one's, then finds it."""
    found = find(server_path, rpc_path)
    if found is not None:
        return found
    with _build_lock:
        found = find(server_path, rpc_path)
        if found is not None:
            return found
        logger.warning("no llama.cpp binaries found: building them now (once per machine, several minutes)")
        try:
            build = build_llama_cpp(lambda step, percent: None)
        except (BuildError, BackendUnavailable, OSError) as exc:
            raise EngineUnavailable(f"llama.cpp is not installed and building it failed: {exc}") from exc
    return LlamaCppBinaries(build.llama_server, build.rpc_server, f"{build.llama_cpp_commit} ({build.backend})")
