"""Changes committed on one PostgreSQL server reach the others (``server/notify.py``): watch streams,
the controllers of the leader, and revoked credentials."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.states import WorkerState
from gpufleet.schemas.workers import HeartbeatAck
from gpufleet.server.auth import CACHE_TTL
from gpufleet.server.notify import MAX_PAYLOAD, encode
from tests.support.builders import worker_registration
from tests.support.server import running_server
from tests.support.wait import eventually
from tests.support.watch import WatchReader


async def test_a_change_on_one_server_reaches_the_watchers_of_another(tmp_path: Path, postgres_url: str) -> None:
    async with (
        running_server(tmp_path / "a", postgres_url) as a,
        running_server(tmp_path / "b", postgres_url) as b,
        await b.admin() as on_b,
        a.client() as on_a,
        WatchReader(on_b, "models,workers") as watched,
    ):
        await watched.wait_for(lambda e: e.get("type") == "SYNCED")
        worker = await on_a.post(
            "/api/workers/register",
            json=worker_registration("far-away", gpus=1),
            headers={"Authorization": f"Bearer {a.token}"},
        )
        assert worker.status_code == 200, worker.text
        seen = await watched.wait_for(lambda e: e.get("kind") == "workers" and e.get("type") == "ADDED", timeout=5)
        assert seen["object"]["name"] == "far-away"
        assert b.runtime.relay is not None and b.runtime.relay.received >= 1


async def test_a_relay_cut_off_reconnects_and_its_watchers_list_again(tmp_path: Path, postgres_url: str) -> None:
    """Changes committed while a server was not listening are lost to it: its watch streams end (their
    clients re-list), and changes after the reconnection flow again."""
    async with (
        running_server(tmp_path / "a", postgres_url) as a,
        running_server(tmp_path / "b", postgres_url) as b,
        await b.admin() as on_b,
        a.client() as on_a,
    ):
        relay = b.runtime.relay
        assert relay is not None and relay.listener_pid is not None
        async with WatchReader(on_b, "workers") as cut_off:
            await cut_off.wait_for(lambda e: e.get("type") == "SYNCED")
            connection = await asyncpg.connect(postgres_url)
            try:
                await connection.execute("SELECT pg_terminate_backend($1)", relay.listener_pid)
            finally:
                await connection.close()
            await asyncio.wait_for(cut_off.finished(), 10)  # ended, so that its client lists again
        async with WatchReader(on_b, "workers") as again:
            await again.wait_for(lambda e: e.get("type") == "SYNCED")
            registered = await on_a.post(
                "/api/workers/register",
                json=worker_registration("after-the-cut", gpus=1),
                headers={"Authorization": f"Bearer {a.token}"},
            )
            assert registered.status_code == 200, registered.text
            await again.wait_for(
                lambda e: e.get("type") == "ADDED" and (e.get("object") or {}).get("name") == "after-the-cut",
                timeout=10,
            )


async def test_a_key_revoked_on_one_server_is_refused_by_another_at_once(tmp_path: Path, postgres_url: str) -> None:
    async with (
        running_server(tmp_path / "a", postgres_url) as a,
        running_server(tmp_path / "b", postgres_url) as b,
        await a.admin() as on_a,
    ):
        key = (await on_a.post("/api/api-keys", json={"name": "ci"})).json()
        async with b.client(key["key"]) as by_key_on_b:
            assert (await by_key_on_b.get("/api/models")).status_code == 200  # now trusted by b's cache
            assert (await on_a.delete(f"/api/api-keys/{key['id']}")).status_code == 204

            async def refused() -> bool:
                return (await by_key_on_b.get("/api/models")).status_code == 401

            # Well before b's cache would have forgotten it on its own.
            await eventually(refused, timeout=CACHE_TTL / 2, what="b to refuse the revoked key")


def test_an_event_too_large_to_notify_is_sent_without_its_object() -> None:
    small = Event(kind=EventKind.MODELS, type=EventType.MODIFIED, id=7, object={"name": "m"})
    assert '"object":{"name":"m"}' in encode("me", small)
    large = Event(kind=EventKind.MODELS, type=EventType.MODIFIED, id=7, object={"name": "m", "x": "y" * 10_000})
    payload = encode("me", large)
    assert len(payload) < MAX_PAYLOAD and '"load":true' in payload and "yyy" not in payload
    gone = Event(
        kind=EventKind.INSTANCES,
        type=EventType.DELETED,
        id=3,
        object={"id": 3, "worker_id": 5, "subordinates": [{"worker_id": 6, "claim": "z" * 10_000}], "log": "z"},
    )
    payload = encode("me", gone)
    assert '"load"' not in payload and "zzz" not in payload
    assert '"worker_id":5' in payload and '"subordinates":[{"worker_id":6}]' in payload


async def _end_listener(postgres_url: str, pid: int) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


async def test_after_a_reconnection_cached_heartbeat_states_and_credentials_are_forgotten(
    tmp_path: Path, postgres_url: str
) -> None:
    """A worker marked not_ready, or a key revoked, while the relay was cut off was never heard of:
    the server must not keep answering from what it cached before."""
    async with running_server(tmp_path / "b", postgres_url) as b, await b.admin() as on_b:
        relay = b.runtime.relay
        assert relay is not None and relay.listener_pid is not None
        assert (await on_b.get("/api/models")).status_code == 200  # the admin's session: now cached
        assert b.runtime.resolver._verified
        b.runtime.heartbeats.known(HeartbeatAck(id=424242, state=WorkerState.READY, state_message=None))
        assert b.runtime.heartbeats.beat(424242) is not None
        await _end_listener(postgres_url, relay.listener_pid)

        async def forgotten() -> bool:
            return b.runtime.heartbeats.beat(424242) is None and not b.runtime.resolver._verified

        await eventually(forgotten, timeout=10, what="b to forget what it cached before the cut")


async def test_the_relay_keeps_reconnecting_whatever_the_error(tmp_path: Path, postgres_url: str) -> None:
    """During a PostgreSQL restart the connection can open and LISTEN then fail with an InterfaceError
    (not a PostgresError): the relay must try again, not end for good."""
    async with running_server(tmp_path / "b", postgres_url) as b:
        relay = b.runtime.relay
        assert relay is not None and relay.listener_pid is not None
        listen = relay._listen
        failures: list[int] = []

        async def flaky_listen() -> None:
            if not failures:
                failures.append(1)
                raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
            await listen()

        relay._listen = flaky_listen  # type: ignore[method-assign]
        old = relay.listener_pid
        await _end_listener(postgres_url, old)

        async def reconnected() -> bool:
            return bool(failures) and relay.listener_pid not in (None, old)

        await eventually(reconnected, timeout=15, what="the relay to listen again after a failed reconnection")
