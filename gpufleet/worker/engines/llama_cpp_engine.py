"""llama.cpp as a worker runs it: the ``Engine`` the supervisor and ``gpufleet engines`` drive.

It joins three llama.cpp modules: ``binaries`` (find llama-server and ggml-rpc-server, or build
them once per machine), ``llama_cpp_build`` (the build itself, for CPU, CUDA, HIP or Metal) and
``llama_cpp`` (the exact command lines). The run settings come from the deployment through
``engines.llama_cpp_flags``, the same ones the scheduler estimated for.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.engines.llama_cpp_flags import run_config_for
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.model_info import model_info
from gpufleet.worker.engines.backends import BackendUnavailable, BuildBackend, detect_backend
from gpufleet.worker.engines.base import (
    EngineOptions,
    EngineUnavailable,
    InstalledEngine,
    PartRequest,
    Progress,
    ServerLaunch,
    ServerRequest,
)
from gpufleet.worker.engines.binaries import LlamaCppBinaries, find, find_or_build
from gpufleet.worker.engines.llama_cpp import rpc_launch, server_launch
from gpufleet.worker.engines.llama_cpp_build import (
    BuildError,
    LlamaCppBuild,
    build_llama_cpp,
    find_build,
    installed_builds,
)


def _installed(build: LlamaCppBuild) -> InstalledEngine:
    return InstalledEngine("llama.cpp", build.version, build.llama_cpp_commit, build.backend, build.bin_dir)


class LlamaCppEngine:
    name = "llama.cpp"
    program = "llama-server"
    health_path = "/health"
    part_program = "ggml-rpc-server"
    cluster_head = False
    model_layout = "gguf"

    def __init__(self, options: EngineOptions) -> None:
        self.paths = (options.llama_server_path, options.rpc_server_path)
        self.binaries: LlamaCppBinaries | None = None

    @property
    def version(self) -> str | None:
        return self.binaries.version if self.binaries else None

    # --- serving --------------------------------------------------------------------------------
    def discover(self) -> None:
        self.binaries = find(*self.paths)

    def ensure_installed(self) -> None:
        if self.binaries is None:
            self.binaries = find_or_build(*self.paths)

    def _found(self) -> LlamaCppBinaries:
        if self.binaries is None:
            raise EngineUnavailable("llama.cpp is not installed yet: run 'gpufleet engines install llama.cpp'")
        return self.binaries

    def server_launch(self, request: ServerRequest) -> ServerLaunch:
        model, instance = request.model, request.instance
        info = model_info(read_model(request.model_path))
        config = run_config_for(model.ctx_size, model.backend_parameters)
        return server_launch(
            self._found(),
            model_path=request.model_path,
            alias=model.name,
            info=info,
            config=config,
            claim=instance.claim or {},
            device_ids=[d for d in instance.device_ids if ":cpu:" not in d],
            host=request.host,
            port=request.port,
            api_key=request.api_key,
            rpc_endpoints=request.rpc_endpoints,
            threads=request.threads,
            backend_parameters=model.backend_parameters,
        )

    def part_ports(self, *, head: bool, device_ids: Sequence[str]) -> int:
        return 1

    def part_launch(self, request: PartRequest) -> ServerLaunch:
        """ggml-rpc-server on ``ports[0]`` (llama.cpp has no head: ``head`` is never asked for)."""
        return rpc_launch(
            self._found(),
            host=request.host,
            port=request.ports[0],
            device_ids=request.device_ids,
            threads=request.threads,
        )

    def part_stopped(self, command: Sequence[str]) -> None:
        return None  # an RPC server leaves nothing behind

    # --- installing -----------------------------------------------------------------------------
    def installed(self) -> list[InstalledEngine]:
        return [_installed(build) for build in installed_builds()]

    def _backend(self, accelerator: str | None) -> BuildBackend:
        """``cpu`` builds for the CPU anywhere; otherwise what this machine has (asked for or not)."""
        try:
            chosen = BuildBackend("cpu") if accelerator == "cpu" else detect_backend()
        except BackendUnavailable as exc:
            raise EngineUnavailable(exc.message) from exc
        if accelerator not in (None, "cpu", chosen.name):
            raise EngineUnavailable(f"--backend {accelerator} is not available here (this machine has {chosen.name})")
        return chosen

    def find_installed(self, accelerator: str | None) -> InstalledEngine | None:
        build = find_build(self._backend(accelerator))
        return _installed(build) if build is not None else None

    def install(self, report: Progress, *, accelerator: str | None, jobs: int | None) -> InstalledEngine:
        try:
            return _installed(build_llama_cpp(report, backend=self._backend(accelerator), jobs=jobs))
        except BuildError as exc:
            raise EngineUnavailable(exc.message) from exc
