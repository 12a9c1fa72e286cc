"""The server calling a worker's own API (``http://<worker ip>:<worker port>``), with its token.

Every worker makes a random API token at each start and sends it when it registers; the server
keeps its hash (``workers.api_token_hash``) and presents a bearer derived from that hash and the
cluster token (``common.worker_api_token``); the worker's private routes answer 401 to anything
else. This module is the one place that builds those calls: address, the bearer, timeouts,
and errors that say which worker failed and how (``BadGateway``, HTTP 502). Instance logs use it
now; the gateway's inference proxy will too.

Responses are opened as streams (``open``) and must be given back with ``close``, which also
runs when the caller is being cancelled (a client that went away), so the connection to the
worker is always closed and the worker sees its client leave.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import anyio
import httpx

from gpufleet.common.errors import BadGateway
from gpufleet.common.worker_api_token import server_bearer
from gpufleet.db.tables import Worker

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class WorkerEndpoint:
    """Where a worker's API is and the hash of its API token (never printed)."""

    name: str
    ip: str
    port: int
    api_token_hash: str | None = field(repr=False)

    @classmethod
    def of(cls, row: Worker) -> WorkerEndpoint:
        return cls(name=row.name, ip=row.ip, port=row.port, api_token_hash=row.api_token_hash)

    @property
    def address(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


def detail_of(response: httpx.Response) -> str:
    """The ``detail`` of an error answer (read with ``aread`` first), else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


class WorkerCalls:
    """One HTTP connection pool for all server→worker calls of this server process."""

    def __init__(self, cluster_token: Callable[[], str], connect_timeout: float = CONNECT_TIMEOUT) -> None:
        """``cluster_token``: read at each call (the server knows it only once it has prepared)."""
        self.cluster_token = cluster_token
        self.connect_timeout = connect_timeout
        self._http = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(READ_TIMEOUT, connect=connect_timeout))

    async def open(
        self,
        worker: WorkerEndpoint,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool] | None = None,
        read_timeout: float | None = READ_TIMEOUT,
    ) -> httpx.Response:
        """Send a request; the answer comes back with its body unread. Give it back with ``close``.

        ``read_timeout=None`` waits for the next bytes indefinitely (a followed log may be quiet
        for hours). Raises ``BadGateway`` when the worker has no token on record, cannot be
        reached, or refuses the token; any other status is returned for the caller to judge.
        """
        if worker.api_token_hash is None:
            raise BadGateway(
                f"worker {worker.name} did not register an API token (it runs an older gpufleet): "
                "upgrade and restart it to reach its engines through the server"
            )
        request = self._http.build_request(
            method,
            f"http://{worker.address}{path}",
            params={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (params or {}).items()},
            headers={"Authorization": f"Bearer {server_bearer(self.cluster_token(), worker.api_token_hash)}"},
            timeout=httpx.Timeout(read_timeout, connect=self.connect_timeout),
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise BadGateway(
                f"cannot reach worker {worker.name} at {worker.address}: {type(exc).__name__}"
                + (f" {exc}" if str(exc) else "")
            ) from exc
        if response.status_code == 401:
            await self.close(response)
            raise BadGateway(
                f"worker {worker.name} at {worker.address} refused the server's token: it has restarted "
                "and not registered again yet, or another process answers on its port"
            )
        return response

    async def close(self, response: httpx.Response) -> None:
        """Close a response from ``open``, even while the caller is being cancelled."""
        with anyio.CancelScope(shield=True):
            await response.aclose()

    async def relay(self, worker: WorkerEndpoint, response: httpx.Response) -> AsyncIterator[bytes]:
        """The body of ``response`` as it arrives, then ``close``. A break mid-way ends the body
        with a line saying so (the status was already sent), and is logged."""
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            logger.warning("stream from worker %s at %s broke: %r", worker.name, worker.address, exc)
            yield f"\n[gpufleet] the stream from worker {worker.name} broke: {type(exc).__name__}\n".encode()
        finally:
            await self.close(response)

    async def aclose(self) -> None:
        await self._http.aclose()
