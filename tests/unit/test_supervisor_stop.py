"""The worker stops its engines when gpufleet stops (no ``--keep-engines``).

``stop_engines`` stops every engine it tracks — run by a runner, or adopted and not yet claimed —
together, each SIGTERM then SIGKILL after the grace, and removes their records; ``kill_engines``
(a second Ctrl-C) SIGKILLs them at once. The engines are real OS processes (Python stand-ins that
ignore SIGTERM, the worst case) recorded like engines; no server answers.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from gpufleet.worker.engines.process import key_digest, launch
from gpufleet.worker.rpc_part import ROLE as RPC_ROLE
from gpufleet.worker.supervisor import Supervisor
from tests.support.wait import eventually
from tests.unit.test_supervisor_passes import KEY, HeldKeyClient, _alive, _event, _instance, _supervisor, _true

# Ignores SIGTERM, and says so (touches the file it is given) once it does.
STUBBORN = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).touch(); time.sleep(600)"
)


def _engine(tmp_path: Path, instance_id: int, role: str, port: int) -> int:
    """Start and record an engine stand-in that ignores SIGTERM, as an earlier run of the worker would have."""
    process = launch(
        tmp_path / "engines",
        instance_id,
        role,
        [sys.executable, "-c", STUBBORN, str(tmp_path / f"ignoring-{instance_id}")],
        port,
        tmp_path / "logs" / f"{instance_id}-{role}.log",
        {},
        program="stand-in",
        health_path="/health" if role == "server" else "",
        key_digest=key_digest(KEY) if role == "server" else "",
        placement=["cuda:0"],
    )
    return process.pid


@pytest.fixture
def reap() -> Any:
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            psutil.Process(pid).kill()


async def _three_engines(tmp_path: Path, reap: list[int]) -> tuple[Supervisor, HeldKeyClient, list[int]]:
    """A runner's engine (instance 5, adopted and claimed), an unclaimed server (6) and an RPC server (7)."""
    pids = [_engine(tmp_path, 5, "server", 40005), _engine(tmp_path, 6, "server", 40006)]
    pids.append(_engine(tmp_path, 7, RPC_ROLE, 41007))
    reap.extend(pids)
    said = [tmp_path / f"ignoring-{i}" for i in (5, 6, 7)]
    await eventually(lambda: _true(all(p.exists() for p in said)), what="the stand-ins to ignore SIGTERM")
    client = HeldKeyClient()
    client.answer.set()
    supervisor = _supervisor(tmp_path, client)
    await supervisor.apply(_event(_instance(3)))
    runner = supervisor.runners[5]
    assert runner.process is not None and runner.process.pid == pids[0]
    assert set(supervisor.adopted) == {6} and set(supervisor.adopted_parts) == {7}
    return supervisor, client, pids


async def test_stopping_ends_every_engine_together_within_the_grace(tmp_path: Path, reap: list[int]) -> None:
    supervisor, client, pids = await _three_engines(tmp_path, reap)
    await supervisor.shutdown()
    assert all(_alive(pid) for pid in pids), "shutdown alone leaves engines running (--keep-engines)"

    started = time.monotonic()
    await supervisor.stop_engines(grace=1.0)
    took = time.monotonic() - started

    assert not any(_alive(pid) for pid in pids)
    # each ignored SIGTERM for the 1 s grace: together that is about 1 s, one after another 3 s
    assert 1.0 <= took < 2.0, took
    assert list((tmp_path / "engines").iterdir()) == [], "records left: the next start would try to adopt"
    assert supervisor.runners == {} and supervisor.adopted == {} and supervisor.adopted_parts == {}
    await client.close()


async def test_stopping_at_once_kills_every_engine_and_forgets_it(tmp_path: Path, reap: list[int]) -> None:
    supervisor, client, pids = await _three_engines(tmp_path, reap)
    stopping = asyncio.create_task(supervisor.stop_engines(grace=600.0))  # a first Ctrl-C: SIGTERM, ignored
    await asyncio.sleep(0)

    supervisor.kill_engines()  # the second Ctrl-C

    assert list((tmp_path / "engines").iterdir()) == []
    await eventually(lambda: _true(not any(_alive(pid) for pid in pids)), what="the engines to die")
    await asyncio.wait_for(stopping, 5)
    await client.close()
