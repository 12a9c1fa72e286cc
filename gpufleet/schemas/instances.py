"""Model instances: one running copy (replica) of a deployment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from gpufleet.schemas.common import PublicModel, RequestModel
from gpufleet.schemas.states import InstanceState


class Subordinate(BaseModel):
    """A worker that lends devices to a distributed instance over llama.cpp RPC.

    The part is ready when ``rpc_port`` is set and ``message`` is None: the subordinate worker runs
    a ggml-rpc-server (``rpc_pid``) at ``rpc_host:rpc_port`` for this instance only. ``message``
    says why it is not (its RPC server failed, its worker was lost).
    """

    worker_id: int
    worker_name: str
    device_ids: list[str]
    rpc_port: int | None = None
    rpc_host: str | None = None
    rpc_pid: int | None = None
    message: str | None = None
    claim: dict[str, Any] = Field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.rpc_port is not None and self.rpc_host is not None and self.message is None

    @property
    def endpoint(self) -> str:
        host = f"[{self.rpc_host}]" if self.rpc_host and ":" in self.rpc_host else self.rpc_host
        return f"{host}:{self.rpc_port}"


class InstancePublic(PublicModel):
    id: int
    name: str
    model_id: int | None  # None once the deployment is deleted and this instance is still stopping
    model_name: str
    state: InstanceState
    state_message: str | None
    worker_id: int | None
    worker_name: str | None
    device_ids: list[str]
    port: int | None  # the engine's own port on the worker
    pid: int | None  # the engine's OS process id on the worker
    claim: dict[str, Any] | None
    subordinates: list[Subordinate]
    restart_count: int
    download_progress: float | None
    version: int
    created_at: datetime
    updated_at: datetime
    # The engine's command line as its worker started it (set with ``starting``; None before).
    engine_command: list[str] | None = None
    # The deployment's spec fingerprint this instance was created for; outdated (replaced one at a
    # time) once the deployment's ``spec_hash`` differs. None: created before fingerprints existed.
    spec_hash: str | None = None
    # vLLM across workers: the instance's Ray head (``host:port`` on its main worker), which the
    # subordinates' Ray nodes join. None until the main worker started it, and for every other instance.
    ray_head: str | None = None


class InstanceTransition(RequestModel):
    """A state change asked for by a worker (or an admin tool) through the lifecycle guard.

    ``expected_version`` makes it a compare-and-swap: the change is refused with
    409 when the instance moved since the caller read it.
    """

    expected_version: int = Field(ge=0)
    state: InstanceState
    state_message: str | None = Field(None, max_length=8000)
    port: int | None = Field(None, ge=1, le=65535)
    pid: int | None = Field(None, ge=1)
    download_progress: float | None = Field(None, ge=0, le=100)
    restart_count: int | None = Field(None, ge=0)
    engine_command: list[str] | None = Field(None, max_length=4096)
    # The port of the Ray head the main worker started for the instance (vLLM across workers): the
    # server records ``<the worker's ip>:<port>`` as ``ray_head``; null clears it.
    ray_head_port: int | None = Field(None, ge=1, le=65535)


class InstanceRelease(RequestModel):
    """A worker gives an instance back: after stopping it, or after it failed to start repeatedly."""

    expected_version: int = Field(ge=0)
    reason: str = Field(min_length=1, max_length=8000)
    failed: bool = False  # the engine kept failing here: the scheduler avoids this worker for a while


class RpcServerReport(RequestModel):
    """A subordinate worker reports its RPC server for an instance: running (port and pid) or not (message)."""

    rpc_port: int | None = Field(None, ge=1, le=65535)
    rpc_pid: int | None = Field(None, ge=1)
    message: str | None = Field(None, max_length=8000)


class EngineKeyPublic(PublicModel):
    """The API key an instance's engine must require, told only to the worker that runs it: the
    gateway presents it, so requests that bypass the gateway are refused by the engine."""

    api_key: str
