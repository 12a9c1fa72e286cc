"""The worker's HTTP client for the server API, with fail-over across ``--server-url`` entries."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gpufleet.common.errors import BadGateway, GpufleetError
from gpufleet.common.tls import client_ssl_context, untrusted_reason
from gpufleet.schemas.events import Event
from gpufleet.schemas.instances import (
    EngineKeyPublic,
    InstancePublic,
    InstanceRelease,
    InstanceTransition,
    RpcServerReport,
)
from gpufleet.schemas.model_files import ModelFilePublic, ModelFileReport
from gpufleet.schemas.models import ModelPublic
from gpufleet.schemas.workers import HeartbeatAck, WorkerHeartbeat, WorkerRegister, WorkerRegistered

logger = logging.getLogger(__name__)

WATCH_READ_TIMEOUT = 45.0  # the server pings every 15 s; three missed pings mean the stream is dead


class ServerUnavailable(BadGateway):
    """No server URL answered."""


class ServerUntrusted(ServerUnavailable):
    """No server answered, and (at least) one refused TLS: its certificate is not trusted or names another
    host. Retrying cannot fix it; the message says what to give instead."""


UNTRUSTED_HINT = "give the CA with --server-ca FILE"


class ServerRejected(GpufleetError):
    """A server answered with an error status (``status_code``, its ``detail``)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


def _transient(status_code: int) -> bool:
    """A server that is restarting, overloaded or behind a proxy without a backend: try another, or later."""
    return status_code >= 500 or status_code == 429


class ServerClient:
    """``verify``: the certificates an HTTPS server URL must present (``worker.server_trust``); the
    system trust store when not given."""

    def __init__(self, urls: list[str], cluster_token: str, verify: ssl.SSLContext | None = None) -> None:
        self.urls = urls
        self.cluster_token = cluster_token
        self.credential: str | None = None
        self._current = 0
        # Heartbeats reuse one connection: kept open 60 s idle (the server keeps it 75 s), not 5 s.
        limits = httpx.Limits(keepalive_expiry=60.0)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            trust_env=False,
            limits=limits,
            verify=verify if verify is not None else client_ssl_context(None),
        )

    @property
    def url(self) -> str:
        return self.urls[self._current]

    async def close(self) -> None:
        await self._http.aclose()

    def _headers(self, use_token: bool) -> dict[str, str]:
        secret = self.cluster_token if use_token or not self.credential else self.credential
        return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        use_token: bool = False,
        body: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        last_error: str | None = None
        untrusted: str | None = None
        for attempt in range(len(self.urls)):
            url = self.urls[(self._current + attempt) % len(self.urls)]
            try:
                response = await self._http.request(
                    method,
                    url + path,
                    headers=self._headers(use_token),
                    content=body,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                last_error = f"{url}: {type(exc).__name__} {exc}".strip()
                reason = untrusted_reason(exc, UNTRUSTED_HINT)
                untrusted = f"{url}: {reason}" if reason else untrusted
                continue
            if _transient(response.status_code):
                last_error = f"{url}: HTTP {response.status_code} {_detail(response)}"
                continue
            self._current = (self._current + attempt) % len(self.urls)
            if response.status_code >= 400:
                raise ServerRejected(response.status_code, _detail(response))
            return response
        if untrusted is not None:
            raise ServerUntrusted(untrusted)
        raise ServerUnavailable(f"no server could answer ({last_error})")

    async def register(self, body: WorkerRegister) -> WorkerRegistered:
        """Always with the cluster token: a known worker proves which one it is by ``body.credential``
        (a worker credential alone may not change its worker's name or address)."""
        response = await self._request("POST", "/api/workers/register", use_token=True, body=body.model_dump_json())
        return WorkerRegistered.model_validate(response.json())

    async def heartbeat(self, worker_id: int, body: WorkerHeartbeat, timeout: float | None = None) -> HeartbeatAck:
        response = await self._request(
            "POST", f"/api/workers/{worker_id}/heartbeat", body=body.model_dump_json(), timeout=timeout
        )
        return HeartbeatAck.model_validate(response.json())

    async def transition(self, instance_id: int, body: InstanceTransition) -> InstancePublic:
        response = await self._request(
            "POST",
            f"/api/model-instances/{instance_id}/transition",
            body=body.model_dump_json(exclude_unset=True),
        )
        return InstancePublic.model_validate(response.json())

    async def instance(self, instance_id: int) -> InstancePublic:
        response = await self._request("GET", f"/api/model-instances/{instance_id}")
        return InstancePublic.model_validate(response.json())

    async def engine_key(self, instance_id: int) -> str:
        """The API key the instance's engine must require (only its main worker may read it)."""
        response = await self._request("GET", f"/api/model-instances/{instance_id}/engine-key")
        return EngineKeyPublic.model_validate(response.json()).api_key

    async def report_rpc_server(self, instance_id: int, body: RpcServerReport) -> InstancePublic:
        response = await self._request(
            "POST", f"/api/model-instances/{instance_id}/rpc-server", body=body.model_dump_json(exclude_unset=True)
        )
        return InstancePublic.model_validate(response.json())

    async def model(self, model_id: int) -> ModelPublic:
        response = await self._request("GET", f"/api/models/{model_id}")
        return ModelPublic.model_validate(response.json())

    async def report_model_file(self, body: ModelFileReport) -> ModelFilePublic:
        response = await self._request("PUT", "/api/model-files", body=body.model_dump_json())
        return ModelFilePublic.model_validate(response.json())

    async def release(self, instance_id: int, expected_version: int, reason: str, *, failed: bool = False) -> None:
        body = InstanceRelease(expected_version=expected_version, reason=reason, failed=failed)
        await self._request("POST", f"/api/model-instances/{instance_id}/release", body=body.model_dump_json())

    async def watch(self, kinds: str) -> AsyncIterator[Event]:
        """Events of one watch connection, until it ends or breaks (then the caller reconnects)."""
        timeout = httpx.Timeout(10.0, read=WATCH_READ_TIMEOUT)
        for attempt in range(len(self.urls)):
            url = self.urls[(self._current + attempt) % len(self.urls)]
            try:
                async with self._http.stream(
                    "GET",
                    f"{url}/api/watch",
                    params={"kinds": kinds},
                    headers=self._headers(False),
                    timeout=timeout,
                ) as response:
                    if _transient(response.status_code):
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        raise ServerRejected(response.status_code, _detail(response))
                    self._current = (self._current + attempt) % len(self.urls)
                    async for line in response.aiter_lines():
                        if line.strip():
                            yield Event.model_validate(json.loads(line))
                    return
            except httpx.ConnectError:
                continue
        raise ServerUnavailable(f"no server answered the watch ({', '.join(self.urls)})")
