"""The worker agent: register, heartbeat, watch desired instances, serve health and metrics.

Lifecycle: bind the worker port and serve it (the server probes it) → register
(the cluster token, plus the stored credential when there is one: same worker, maybe
renamed) → run the heartbeat loop and
the watch loop until asked to stop → stop the engines it started (unless ``--keep-engines``: then
the next start re-adopts them) while sending a last ``leaving`` heartbeat, so the server marks the
worker ``not_ready`` (its instances ``unreachable``) at once instead of after 3 intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

import gpufleet
from gpufleet.common import version_skew
from gpufleet.common.errors import GpufleetError
from gpufleet.common.http_server import make_server
from gpufleet.common.net import bind_socket, is_loopback
from gpufleet.common.resources import device_id
from gpufleet.common.worker_api_token import server_bearer, token_hash
from gpufleet.config import Settings
from gpufleet.schemas.events import EventType
from gpufleet.schemas.instances import InstancePublic
from gpufleet.schemas.workers import (
    SystemReserved,
    WorkerHeartbeat,
    WorkerRegister,
    WorkerRegistered,
    WorkerStatus,
)
from gpufleet.worker import credentials
from gpufleet.worker.address import advertised_ip
from gpufleet.worker.api_auth import new_api_token
from gpufleet.worker.app import create_worker_app, render_metrics
from gpufleet.worker.client import ServerClient, ServerRejected, ServerUnavailable, ServerUntrusted
from gpufleet.worker.devices.registry import DeviceDetection
from gpufleet.worker.engine_bind import engine_bind_host
from gpufleet.worker.engine_metrics import EngineScraper, engine_targets
from gpufleet.worker.engines import EngineOptions, engines_for
from gpufleet.worker.server_trust import server_ssl_context
from gpufleet.worker.status import collect_status, status_fingerprint
from gpufleet.worker.supervisor import Supervisor

logger = logging.getLogger(__name__)


# Back-off of the embedded worker while the server refuses it (seconds): first wait, then doubling to.
REFUSED_RETRY_FIRST = 5.0
REFUSED_RETRY_MAX = 60.0


class WorkerFatal(GpufleetError):
    """The worker cannot go on (wrong token, name clash); the message says what to do."""


class WorkerAgent:
    def __init__(self, settings: Settings, cluster_token: str) -> None:
        self.settings = settings
        self.detection = DeviceDetection(settings.device_inventory)  # raises InventoryError for a bad file
        self.client = ServerClient(settings.server_urls, cluster_token, server_ssl_context(settings))
        self.api_token = new_api_token()  # sent at registration; the server keeps its hash. New at every start
        self.ip = advertised_ip(settings)
        self.worker_id: int | None = None
        self.state: str | None = None
        self.status: WorkerStatus | None = None
        self.supervisor = Supervisor(
            self.client,
            data_dir=settings.data_dir,
            bind_host=engine_bind_host(settings.host, self.ip),  # engines: the advertised address only
            ports=settings.service_ports,
            rpc_ports=settings.rpc_ports,
            allowed_model_dirs=settings.model_dirs,
            engines=engines_for(EngineOptions(settings.llama_server_path, settings.rpc_server_path)),
            restart_backoff=settings.engine_restart_backoff,
            start_timeout=settings.engine_start_timeout,
            huggingface_token=settings.huggingface_token,
        )
        self.engine_metrics = EngineScraper(self.client.engine_key)
        self._sent_fingerprint: str | None = None
        self._stop = asyncio.Event()
        self._rewatch = asyncio.Event()
        self._outage_logged = False

    # --- public ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        bind_host = "127.0.0.1" if is_loopback(self.settings.host) else self.settings.host
        sock = bind_socket(bind_host, self.settings.worker_port, "--worker-port")
        server = make_server(
            create_worker_app(
                self._metrics,
                lambda: self.settings.worker_name,
                # what the server presents: derived from our token and the cluster token (worker_api_token)
                api_token=server_bearer(self.client.cluster_token, token_hash(self.api_token)),
                log_path=self.supervisor.log_path,
            ),
            sock,
            self.settings.log_level,
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="worker-http")
        asked_to_stop = False  # stays False when a failure ends the worker: engines then keep serving
        try:
            await self.supervisor.discover_engines()
            await self._refresh_status()
            await self._register()
            if stop.is_set():
                asked_to_stop = True
                return
            loops = [
                asyncio.create_task(self._status_loop(), name="worker-status"),
                asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
                asyncio.create_task(self._watch_loop(), name="worker-watch"),
            ]
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*loops, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in [*loops, stopper]:
                task.cancel()
            await asyncio.gather(*loops, stopper, return_exceptions=True)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            asked_to_stop = True
        finally:
            server.should_exit = True  # the worker's port closes while engines stop
            await self._wind_down(asked_to_stop)
            await serving
            await self.engine_metrics.close()
            await self.client.close()

    async def _wind_down(self, asked_to_stop: bool) -> None:
        """Stop watching engines; when asked to stop, then stop them (unless ``--keep-engines``) and leave.

        Runners stop first, so that none reports an instance ``running`` after the server has heard
        that this worker leaves (it marks the instances ``unreachable``); the engine stops and the
        ``leaving`` heartbeat then go together, to stay within the stop's time. Engines left running
        (``--keep-engines``, or a failure ended the worker) are re-adopted by the next start."""
        await self.supervisor.shutdown()
        if not asked_to_stop:
            return
        steps = [self._leave()]
        if not self.settings.keep_engines:
            steps.append(self.supervisor.stop_engines())
        await asyncio.gather(*steps)

    # --- registration ---------------------------------------------------------------------------
    def _registration(self) -> WorkerRegister:
        assert self.status is not None
        return WorkerRegister(
            name=self.settings.worker_name,
            ip=self.ip,
            port=self.settings.worker_port,
            labels=self.settings.labels,
            system_reserved=SystemReserved(**self.settings.system_reserved),
            status=self.status,
            api_token=self.api_token,
        )

    async def _register(self) -> None:
        """Register, retrying while no server answers.

        A refusal a retry cannot fix (a name taken, a wrong token) ends a worker-only process with
        the server's reason. The embedded worker of ``gpufleet start`` keeps the server up instead:
        it logs the reason and tries again with a longer back-off (an admin may free the name or
        delete the old worker meanwhile).
        """
        delay, longest = 1.0, 10.0
        while not self._stop.is_set():
            try:
                await self._register_once()
                return
            except ServerUnavailable as exc:
                logger.warning("waiting for the server: %s (retrying in %.0fs)", exc, delay)
            except WorkerFatal as exc:
                if not self.settings.runs_server:
                    raise
                delay, longest = max(delay, REFUSED_RETRY_FIRST), REFUSED_RETRY_MAX
                logger.error(
                    "the embedded worker cannot join its server: %s. The server keeps running without it; "
                    "retrying in %.0fs",
                    exc,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, longest)

    async def _register_once(self) -> None:
        """Register with the cluster token; with the stored credential too when there is one, which
        re-attaches this worker (same id, devices, instances) under the current name and address."""
        path = self.settings.worker_credential_file
        stored = credentials.load(path)
        body = self._registration()
        if stored is not None:
            if stored.worker_name != body.name:
                logger.warning(
                    "renaming worker %r (id %d, credential in %s) to %r. Two workers on one machine need a data "
                    "dir each (--data-dir).",
                    stored.worker_name,
                    stored.worker_id,
                    path,
                    body.name,
                )
            try:
                result = await self._send(body.model_copy(update={"credential": stored.credential}))
            except ServerRejected as exc:
                if exc.status_code != 404:
                    raise self._refused(exc, "cannot rejoin") from exc
                logger.warning("stored worker credential was refused (%s); registering anew", exc.detail)
                credentials.forget(path)
                self.client.credential = None
            else:
                if result.worker.name != stored.worker_name:
                    credentials.save(
                        path, credentials.StoredCredential(result.worker.id, result.worker.name, stored.credential)
                    )
                self.client.credential = stored.credential
                self._attached(result.worker.id, result.worker.state)
                self._note_server_version(result.server_version)
                logger.info("rejoined as worker %s (id %d)", result.worker.name, result.worker.id)
                return
        try:
            result = await self._send(body)
        except ServerRejected as exc:
            raise self._refused(exc, "registration refused") from exc
        assert result.credential is not None
        credentials.save(path, credentials.StoredCredential(result.worker.id, result.worker.name, result.credential))
        self.client.credential = result.credential
        self._attached(result.worker.id, result.worker.state)
        self._note_server_version(result.server_version)
        logger.info(
            "registered as worker %s (id %d), advertising %s:%d",
            result.worker.name,
            result.worker.id,
            self.ip,
            self.settings.worker_port,
        )

    async def _send(self, body: WorkerRegister) -> WorkerRegistered:
        """Register; a server whose certificate is not trusted ends the attempts as a refusal does
        (a retry cannot fix it; the message says which flag to give)."""
        try:
            return await self.client.register(body)
        except ServerUntrusted as exc:
            raise WorkerFatal(exc.message) from None

    @staticmethod
    def _refused(exc: ServerRejected, what: str) -> WorkerFatal:
        if exc.status_code == 401:
            return WorkerFatal(
                "the server refused the cluster token: pass the server's token with --token "
                f"(it is in the server's data dir, file 'token'). Server said: {exc.detail}"
            )
        return WorkerFatal(f"{what}: {exc.detail}")

    @staticmethod
    def _note_server_version(server_version: str | None) -> None:
        """Say which gpufleet the server runs; warn while it is a minor version away from ours (the
        server refuses a wider gap at registration, with a 409 that ``_refused`` turns into one line)."""
        if server_version is None:
            return  # a server older than the ``server_version`` field
        verdict = version_skew.judge(gpufleet.__version__, server_version)
        if verdict.skew == version_skew.Skew.ONE_MINOR:
            logger.warning("%s", verdict.message)
        else:
            logger.info("the server runs gpufleet %s", server_version)

    def _attached(self, worker_id: int, state: str) -> None:
        self.worker_id = worker_id
        self.state = state
        self.supervisor.worker_id = worker_id
        self._sent_fingerprint = status_fingerprint(self.status) if self.status else None

    # --- status and heartbeats ----------------------------------------------------------------
    async def _refresh_status(self) -> None:
        self.status = await asyncio.to_thread(collect_status, self.detection, self.supervisor.engine_versions)
        name = self.settings.worker_name
        self.supervisor.simulated_device_ids = {
            device_id(name, d.type.value, d.index) for d in self.status.devices if d.simulated
        }

    async def _status_loop(self) -> None:
        """Detection runs on its own clock: a slow vendor tool must never delay a heartbeat."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            await self._refresh_status()

    async def _heartbeat_loop(self) -> None:
        """Beat at a fixed rate with the latest status; re-register if the server forgot us."""
        interval = self.settings.heartbeat_interval
        # The first beat comes soon: by then the server has probed us, and the answer tells us our state.
        await asyncio.sleep(min(interval, 1.0))
        while True:
            started = asyncio.get_running_loop().time()
            await self._beat()
            await self.supervisor.reconcile_all()  # retries what an earlier report failed to deliver
            await asyncio.sleep(max(0.0, interval - (asyncio.get_running_loop().time() - started)))

    async def _beat(self) -> None:
        assert self.status is not None and self.worker_id is not None
        fingerprint = status_fingerprint(self.status)
        body = WorkerHeartbeat(status=self.status if fingerprint != self._sent_fingerprint else None)
        try:
            public = await self.client.heartbeat(self.worker_id, body)
        except ServerUnavailable as exc:
            if not self._outage_logged:
                logger.warning("heartbeat failed, will keep trying: %s", exc)
                self._outage_logged = True
            return
        except ServerRejected as exc:
            if exc.status_code in (401, 404):
                logger.warning("the server no longer knows this worker (%s); registering again", exc.detail)
                credentials.forget(self.settings.worker_credential_file)
                self.client.credential = None
                await self._register()
                self._rewatch.set()  # the old stream belongs to the old worker id
            else:
                logger.error("heartbeat refused: %s", exc)
            return
        if self._outage_logged:
            logger.info("heartbeats are getting through again")
            self._outage_logged = False
            self._rewatch.set()  # list afresh: instances may have moved elsewhere while we were cut off
        self.state = public.state.value
        if body.status is not None:
            self._sent_fingerprint = fingerprint

    async def _leave(self) -> None:
        if self.worker_id is None:
            return
        try:
            await self.client.heartbeat(self.worker_id, WorkerHeartbeat(leaving=True), timeout=2.0)
        except (ServerUnavailable, ServerRejected, httpx.HTTPError) as exc:
            logger.info("could not tell the server this worker is leaving: %s", exc)

    # --- desired instances ----------------------------------------------------------------------
    async def _watch_loop(self) -> None:
        """Keep one watch stream open; reconnect with back-off, or at once after re-registering.

        Dropping a stream never cuts short the supervisor's pass over an event or a listing: that
        pass runs to the end on its own (``Supervisor.apply``), and the next listing waits for it."""
        delay = 0.5
        while True:
            self._rewatch.clear()
            stream = asyncio.create_task(self._watch_once())
            rewatch = asyncio.create_task(self._rewatch.wait())
            try:
                done, _ = await asyncio.wait({stream, rewatch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (stream, rewatch):
                    task.cancel()
                await asyncio.gather(stream, rewatch, return_exceptions=True)
            if rewatch in done:
                delay = 0.5
                continue
            if stream.exception() is None and stream.result():
                delay = 0.5  # the stream was healthy for a while: reconnect quickly
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _watch_once(self) -> bool:
        """One watch connection; returns whether it got as far as the initial listing."""
        listed: set[int] = set()
        synced = False
        try:
            async for event in self.client.watch("instances"):
                if event.type == EventType.SYNCED:
                    synced = True
                    await self.supervisor.resync(listed)
                elif event.type != EventType.PING:
                    if not synced and event.id is not None:
                        listed.add(event.id)
                    await self.supervisor.apply(event)
        except ServerRejected as exc:
            logger.warning("watch refused: %s", exc)
        except (ServerUnavailable, httpx.HTTPError) as exc:
            logger.info("watch stream ended (%s); reconnecting", type(exc).__name__)
        return synced

    # --- metrics --------------------------------------------------------------------------------
    async def _metrics(self) -> bytes:
        """The worker's own gauges, then its engines' metrics (``engine_metrics``)."""
        instances: list[InstancePublic] = list(self.supervisor.desired.values())
        own = render_metrics(self.settings.worker_name, self.state, self.status, instances)
        name, host = self.settings.worker_name, self.supervisor.engine_host
        return own + await self.engine_metrics.render(engine_targets(instances, self.worker_id, name, host))
