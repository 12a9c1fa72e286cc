"""Changes committed on one server reach every server: PostgreSQL ``NOTIFY`` / ``LISTEN``.

Sending: a hook inside each write transaction that recorded events (``Database.add_before_commit``)
sends them with ``pg_notify`` on channel ``CHANNEL``, in that transaction. PostgreSQL delivers a
notification only if the transaction commits, and in commit order: a listener never hears of a change
that was rolled back, and a server that crashes right after its commit has still told the others.

Receiving: each server listens on one dedicated connection and hands what other servers committed
to its own listeners (``Database.deliver``): the bus (watch streams, workers' streams included), the
controllers' queues, the gateway's routing table, the heartbeat ledger, the credential cache. Its
own notifications come back too and are ignored by origin (each process has a random one).

Payloads are limited to 8,000 bytes: an event that does not fit is sent without its object, and the
receiver reads the object (``Loader``); a deletion too large to send keeps only the fields that route
it (ids, worker, model, state). If the listening connection drops, notifications sent meanwhile are
lost: on reconnecting the relay ends every watch stream (clients reconnect and get a fresh listing)
and the controllers' periodic resync covers the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.errors import NotFound
from gpufleet.db.session import Database
from gpufleet.db.tables import ModelInstance, Worker
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.server.services import instances as instance_service
from gpufleet.server.services import models as model_service
from gpufleet.server.services.worker_public import to_public as worker_public

logger = logging.getLogger(__name__)

CHANNEL = "gpufleet_changes"
MAX_PAYLOAD = 7_900  # bytes; PostgreSQL refuses 8,000 or more
RECONNECT_INTERVAL = 1.0
KEEPALIVE = 10.0  # seconds between checks that the listening connection still answers
# What a too-large deleted object keeps: enough to route it (``bus.involved_workers``, controllers).
ROUTING_FIELDS = ("id", "name", "model_id", "model_name", "worker_id", "worker_name", "state", "subordinates")

Loader = Callable[[EventKind, int], Awaitable[dict[str, Any] | None]]


def encode(origin: str, event: Event) -> str:
    """One notification's payload: the event with its object, or without it if too large."""
    body: dict[str, Any] = {"o": origin, "e": event.model_dump(mode="json", exclude_none=True)}
    payload = json.dumps(body, separators=(",", ":"))
    if len(payload.encode()) <= MAX_PAYLOAD:
        return payload
    slim = event.model_dump(mode="json", exclude_none=True, exclude={"object"})
    if event.type == EventType.DELETED and event.object:
        routing = {k: event.object[k] for k in ROUTING_FIELDS if k in event.object}
        subordinates = [{"worker_id": part.get("worker_id")} for part in routing.get("subordinates") or []]
        slim["object"] = {**routing, "subordinates": subordinates} if "subordinates" in routing else routing
    else:
        body["load"] = True  # the receiver reads the object
    body["e"] = slim
    return json.dumps(body, separators=(",", ":"))


def credentials_payload(origin: str) -> str:
    return json.dumps({"o": origin, "c": True}, separators=(",", ":"))


def public_loader(db: Database) -> Loader:
    """Reads an object as its events carry it (the ``*Public`` schema), or None if it is gone."""

    async def load(kind: EventKind, object_id: int) -> dict[str, Any] | None:
        if kind == EventKind.MODELS:
            try:
                return (await model_service.get_model(db, object_id)).model_dump(mode="json")
            except NotFound:
                return None
        async with db.read() as session:
            if kind == EventKind.INSTANCES:
                instance = await session.get(ModelInstance, object_id)
                return None if instance is None else instance_service.to_public(instance).model_dump(mode="json")
            worker = await session.get(Worker, object_id)
            return None if worker is None else worker_public(worker).model_dump(mode="json")

    return load


class ChangeRelay:
    """Sends this server's committed changes to the others and delivers theirs here."""

    def __init__(self, db: Database, loader: Loader, resynced: Callable[[], None]) -> None:
        """``loader`` reads an object too large to be sent; ``resynced`` is called after the listening
        connection was lost and is back (notifications may have been missed)."""
        self.db = db
        self.origin = secrets.token_hex(8)
        self.loader = loader
        self.resynced = resynced
        self.url = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.received = 0  # events delivered from other servers
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._pending: asyncio.Queue[str] = asyncio.Queue()
        db.add_before_commit(self.send)

    async def send(self, session: AsyncSession, events: list[Event], credentials_changed: bool) -> None:
        payloads = [encode(self.origin, item) for item in events]
        if credentials_changed:
            payloads.append(credentials_payload(self.origin))
        await session.execute(
            text("SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) AS payload"),
            {"channel": CHANNEL, "payloads": payloads},
        )

    async def start(self) -> None:
        """Listen before serving, so that no change committed once the server answers is missed."""
        await self._listen()
        self._task = asyncio.create_task(self._run(), name="change-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def _listen(self) -> None:
        connection = await asyncpg.connect(self.url, timeout=5)
        try:
            self._lost.clear()
            connection.add_termination_listener(lambda _: self._lost.set())
            await connection.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            connection.terminate()  # half set up (PostgreSQL restarting): never left open, never kept
            raise
        self._connection = connection

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._pending.put_nowait(payload)

    async def _run(self) -> None:
        """Deliver in arrival order; reconnect when the listening connection is lost."""
        deliver = asyncio.create_task(self._deliver(), name="change-relay-deliver")
        try:
            while True:
                try:
                    await asyncio.wait_for(self._lost.wait(), KEEPALIVE)
                except TimeoutError:
                    if await self._answers():
                        continue
                if self._connection is not None:
                    self._connection.terminate()
                logger.warning("lost the connection that listens for other servers' changes; reconnecting")
                while True:
                    await asyncio.sleep(RECONNECT_INTERVAL)
                    try:
                        await self._listen()
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - whatever it is, the relay must not end: try again
                        logger.warning("cannot listen for other servers' changes yet: %s: %s", type(exc).__name__, exc)
                try:
                    self.resynced()
                except Exception:
                    logger.exception("could not reset what this server cached after missing changes")
        finally:
            deliver.cancel()
            await asyncio.gather(deliver, return_exceptions=True)

    async def _answers(self) -> bool:
        """A connection cut off silently (no FIN) ends no listener: ask it something."""
        if self._connection is None or self._connection.is_closed():
            return False
        try:
            await self._connection.fetchval("SELECT 1", timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    @property
    def listener_pid(self) -> int | None:
        """The listening connection's backend pid (tests end it to cut the relay off)."""
        if self._connection is None or self._connection.is_closed():
            return None
        pid: int = self._connection.get_server_pid()
        return pid

    async def _deliver(self) -> None:
        while True:
            payload = await self._pending.get()
            try:
                await self._deliver_one(payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not deliver another server's change %.200s", payload)

    async def _deliver_one(self, payload: str) -> None:
        body = json.loads(payload)
        if body.get("o") == self.origin:
            return  # our own: delivered locally at commit
        if body.get("c"):
            self.db.deliver([], True)
            return
        event = Event.model_validate(body["e"])
        if body.get("load") and event.kind is not None and event.id is not None:
            loaded = await self.loader(event.kind, event.id)
            if loaded is None:
                return  # gone since: its deletion follows
            event = event.model_copy(update={"object": loaded})
        self.received += 1
        self.db.deliver([event], False)
