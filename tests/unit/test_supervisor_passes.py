"""The worker's supervisor under a dropped watch stream, late events and a changed placement.

Review findings on the worker side: (1) cancelling a pass over the instances (the agent drops its
watch stream to list afresh) left an engine running but tracked nowhere, so a second one started;
(4) an event older than the one held was applied; (7) an engine was adopted for another placement.

The engines are real OS processes (a Python sleeper started and recorded like an engine), adopted
by a supervisor over the same data dir like a restarted worker. The server is a real
``ServerClient`` aimed at a port where nothing listens (every call: ``ServerUnavailable``), except
``engine_key``, which a test holds open to cancel a pass while it waits on the network.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.instances import InstancePublic, Subordinate
from gpufleet.worker.client import ServerClient
from gpufleet.worker.engines.process import EngineProcess, key_digest, launch
from gpufleet.worker.runner import placement_of
from gpufleet.worker.supervisor import Supervisor
from tests.support.wait import eventually

WORKER = 7
KEY = "engine-key-of-instance-5"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
# An engine stand-in: on SIGTERM it says so (a file), then exits only once told to (another file).
SLOW_TO_STOP = """
import pathlib, signal, sys, time
said, go, ready = (pathlib.Path(a) for a in sys.argv[1:4])
signal.signal(signal.SIGTERM, lambda *_: said.touch())
ready.touch()
while not (said.exists() and go.exists()):
    time.sleep(0.02)
"""


class HeldKeyClient(ServerClient):
    """Reaches no server; ``engine_key`` answers only once ``answer`` is set."""

    def __init__(self) -> None:
        super().__init__(["http://127.0.0.1:1"], "token")
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def engine_key(self, instance_id: int) -> str:
        self.asked.set()
        await self.answer.wait()
        return KEY


def _instance(
    version: int, *, devices: tuple[str, ...] = ("w:cuda:0",), state: str = "running", worker_id: int = WORKER
) -> InstancePublic:
    data: dict[str, Any] = {
        "id": 5,
        "name": "chat-1",
        "model_id": 1,
        "model_name": "chat",
        "state": state,
        "state_message": None,
        "worker_id": worker_id,
        "worker_name": "w",
        "device_ids": list(devices),
        "port": 40005,
        "pid": None,
        "claim": None,
        "subordinates": [],
        "restart_count": 0,
        "download_progress": None,
        "version": version,
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    return InstancePublic.model_validate(data)


def _event(instance: InstancePublic, kind: EventType = EventType.MODIFIED) -> Event:
    return Event(kind=EventKind.INSTANCES, type=kind, id=instance.id, object=instance.model_dump(mode="json"))


def _engine(tmp_path: Path, script: str = "import time; time.sleep(600)", placement: list[str] | None = None) -> int:
    """Start and record an engine stand-in for instance 5, as an earlier run of the worker would have."""
    process = launch(
        tmp_path / "engines",
        5,
        "server",
        [sys.executable, "-c", script, *(str(tmp_path / f) for f in ("said", "go", "ready"))],
        40005,
        tmp_path / "logs" / "chat-1.log",
        {},
        program="stand-in",
        health_path="/health",
        key_digest=key_digest(KEY),
        placement=["cuda:0"] if placement is None else placement,
    )
    return process.pid


def _supervisor(tmp_path: Path, client: ServerClient) -> Supervisor:
    supervisor = Supervisor(
        client,
        data_dir=tmp_path,
        bind_host="127.0.0.1",
        ports=range(40000, 40100),
        rpc_ports=range(41000, 41100),
        allowed_model_dirs=[tmp_path],
        engines={},
        start_timeout=600.0,  # the stand-in never answers /health: its runner just keeps waiting
    )
    supervisor.worker_id = WORKER
    return supervisor


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def reap() -> Any:
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            psutil.Process(pid).kill()


async def test_a_dropped_stream_never_cuts_an_adoption_short(tmp_path: Path, reap: list[int]) -> None:
    """(1) The listing after a restart is adopting an engine, waiting for its key, when the stream is
    dropped; the next listing applies the same instance. One engine, the adopted one, tracked."""
    pid = _engine(tmp_path)
    reap.append(pid)
    client = HeldKeyClient()
    supervisor = _supervisor(tmp_path, client)
    assert set(supervisor.adopted) == {5}

    first = asyncio.create_task(supervisor.apply(_event(_instance(3), EventType.ADDED)))
    await asyncio.wait_for(client.asked.wait(), 10)
    first.cancel()  # the agent drops the stream (heartbeats got through again: list afresh)
    await asyncio.gather(first, return_exceptions=True)
    assert 5 in supervisor.adopted or 5 in supervisor.runners, "the engine is tracked nowhere"

    client.answer.set()
    await supervisor.apply(_event(_instance(3), EventType.ADDED))  # the next stream's listing
    runner = supervisor.runners[5]
    assert runner.process is not None and runner.process.pid == pid, "a second engine was started"
    assert supervisor.adopted == {}

    await supervisor.apply(_event(_instance(4), EventType.DELETED))
    assert not _alive(pid) and supervisor.runners == {}
    assert list((tmp_path / "engines").iterdir()) == []
    await client.close()


async def test_a_dropped_stream_never_cuts_a_stop_short(tmp_path: Path, reap: list[int]) -> None:
    """(1) A listing without the instance stops its adopted engine; the stream is dropped while the
    engine is still stopping. The engine stays tracked until it is gone, then its record goes too."""
    pid = _engine(tmp_path, SLOW_TO_STOP)
    reap.append(pid)
    client = HeldKeyClient()
    supervisor = _supervisor(tmp_path, client)
    await eventually(lambda: _true((tmp_path / "ready").exists()), what="the engine to handle SIGTERM")

    stop = asyncio.create_task(supervisor.resync(set()))
    await eventually(lambda: _true((tmp_path / "said").exists()), what="the engine to get SIGTERM")
    stop.cancel()
    await asyncio.gather(stop, return_exceptions=True)
    assert set(supervisor.adopted) == {5}, "an engine still stopping is tracked nowhere"

    (tmp_path / "go").touch()
    await supervisor.resync(set())  # the next listing: waits for the pass under way
    assert not _alive(pid)
    assert supervisor.adopted == {} and list((tmp_path / "engines").iterdir()) == []
    await client.close()


async def _true(value: bool) -> bool:
    return value


async def test_a_late_event_never_undoes_a_newer_one(tmp_path: Path) -> None:
    """(4) Relayed events can arrive after newer local ones: older versions than held are ignored,
    so are versions no newer than a deletion; a reused id (another created_at) is a new instance."""
    client = HeldKeyClient()
    supervisor = _supervisor(tmp_path, client)

    def elsewhere(version: int) -> InstancePublic:
        return _instance(version, worker_id=WORKER + 1)  # on another worker: nothing to start here

    def held() -> int | None:
        instance = supervisor.desired.get(5)
        return None if instance is None else instance.version

    await supervisor.apply(_event(elsewhere(3)))
    await supervisor.apply(_event(elsewhere(2)))
    assert held() == 3
    await supervisor.apply(_event(elsewhere(2), EventType.DELETED))
    assert held() == 3, "a late deletion stopped a newer placement"
    await supervisor.apply(_event(elsewhere(3)))  # the same event again: applied, harmless
    assert held() == 3

    await supervisor.apply(_event(elsewhere(4), EventType.DELETED))
    assert held() is None
    await supervisor.apply(_event(elsewhere(4)))
    await supervisor.apply(_event(elsewhere(3)))
    assert held() is None, "an event older than the deletion brought the instance back"
    await supervisor.apply(_event(elsewhere(5)))
    assert held() == 5

    await supervisor.apply(_event(elsewhere(6), EventType.DELETED))
    reused = elsewhere(1).model_copy(update={"created_at": CREATED + timedelta(days=1)})
    await supervisor.apply(_event(reused, EventType.ADDED))
    assert held() == 1, "a new instance with a reused id was taken for a late event"
    await client.close()


async def test_an_engine_is_adopted_only_for_the_same_placement(tmp_path: Path, reap: list[int]) -> None:
    """(7) Moved away and placed here again on another device: the old engine is stopped, not adopted.
    The same devices under a renamed worker: adopted."""
    pid = _engine(tmp_path)
    reap.append(pid)
    client = HeldKeyClient()
    client.answer.set()
    supervisor = _supervisor(tmp_path, client)
    await supervisor.apply(_event(_instance(9, devices=("w:cuda:1",), state="scheduled"), EventType.ADDED))
    assert not _alive(pid), "the engine of another placement was adopted"
    runner = supervisor.runners[5]
    assert runner.process is None or runner.process.pid != pid
    await supervisor.apply(_event(_instance(10, devices=("w:cuda:1",)), EventType.DELETED))

    pid = _engine(tmp_path)
    reap.append(pid)
    supervisor = _supervisor(tmp_path, client)
    await supervisor.apply(_event(_instance(11, devices=("renamed:cuda:0",)), EventType.ADDED))
    adopted: EngineProcess | None = supervisor.runners[5].process
    assert adopted is not None and adopted.pid == pid
    await supervisor.apply(_event(_instance(12), EventType.DELETED))
    assert not _alive(pid)
    await client.close()


async def test_an_engine_recorded_without_its_placement_is_restarted(tmp_path: Path, reap: list[int]) -> None:
    """A record written before placements were kept cannot be shown to match: restart, never guess."""
    pid = _engine(tmp_path, placement=[])
    reap.append(pid)
    client = HeldKeyClient()
    client.answer.set()
    supervisor = _supervisor(tmp_path, client)
    await supervisor.apply(_event(_instance(3), EventType.ADDED))
    assert not _alive(pid)
    await supervisor.apply(_event(_instance(4), EventType.DELETED))
    await client.close()


def test_the_placement_names_devices_and_subordinates_without_worker_names() -> None:
    lent = Subordinate(worker_id=9, worker_name="b", device_ids=["b:cpu:0"], rpc_port=41000, rpc_host="10.0.0.2")
    instance = _instance(1, devices=("w:cuda:1", "w:cuda:0")).model_copy(update={"subordinates": [lent]})
    assert placement_of(instance) == ["cuda:0", "cuda:1", "9/cpu:0"]
    moved = lent.model_copy(update={"worker_id": 10})
    assert placement_of(instance.model_copy(update={"subordinates": [moved]})) != placement_of(instance)
