"""Registration through the real app enforces the version-skew rule (``common.version_skew``).

The server runs ``gpufleet.__version__`` (0.1.x); the "too old" case needs a newer server, so that
test stands in for one by setting ``gpufleet.__version__`` (the service reads it at each call)."""

from __future__ import annotations

import logging

import pytest

import gpufleet
from gpufleet.common.version_skew import Release
from tests.support.builders import worker_registration
from tests.support.server import RunningServer


async def _register(server: RunningServer, name: str, version: str) -> tuple[int, dict[str, object]]:
    body = worker_registration(name)
    body["status"]["gpufleet_version"] = version
    async with server.client(server.token) as as_agent:
        response = await as_agent.post("/api/workers/register", json=body)
    return response.status_code, response.json()


def _release(major: int, minor: int) -> str:
    return f"{major}.{minor}.0"


async def test_workers_within_one_minor_version_join_with_a_warning(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    own = Release.parse(gpufleet.__version__)
    assert own is not None
    status, body = await _register(server, "same", gpufleet.__version__)
    assert status == 200 and body["server_version"] == gpufleet.__version__
    with caplog.at_level(logging.WARNING, logger="gpufleet.server.services.workers"):
        status, body = await _register(server, "newer", _release(own.major, own.minor + 1))
    assert status == 200, body
    assert body["server_version"] == gpufleet.__version__
    assert body["worker"]["gpufleet_version"] == _release(own.major, own.minor + 1)  # type: ignore[index]
    assert any("one minor version apart" in r.getMessage() and "'newer'" in r.getMessage() for r in caplog.records)
    if own.minor > 0:
        status, body = await _register(server, "older", _release(own.major, own.minor - 1))
        assert status == 200, body


async def test_a_worker_two_minor_versions_newer_is_refused_saying_to_upgrade_the_server(
    server: RunningServer,
) -> None:
    own = Release.parse(gpufleet.__version__)
    assert own is not None
    worker = _release(own.major, own.minor + 2)
    status, body = await _register(server, "too-new", worker)
    assert status == 409 and body["code"] == "version_skew"
    assert body["detail"] == (
        f"worker gpufleet {worker} cannot join server gpufleet {gpufleet.__version__}: upgrade the server to "
        f"{own.major}.{own.minor + 2}, or run gpufleet {own} or {own.major}.{own.minor + 1} on the worker"
    )
    status, body = await _register(server, "next-major", _release(own.major + 1, own.minor))
    assert status == 409 and "upgrade the server" in str(body["detail"])
    async with await server.admin() as admin:
        names = [w["name"] for w in (await admin.get("/api/workers")).json()]
    assert "too-new" not in names and "next-major" not in names  # nothing was written


async def test_a_worker_two_minor_versions_older_is_refused_saying_to_upgrade_the_worker(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpufleet, "__version__", "0.3.0")
    status, body = await _register(server, "too-old", "0.1.4")
    assert status == 409 and body["code"] == "version_skew"
    assert body["detail"] == (
        "worker gpufleet 0.1.4 cannot join server gpufleet 0.3.0: upgrade the worker to gpufleet 0.2 or 0.3"
    )
    status, body = await _register(server, "one-older", "0.2.9")
    assert status == 200 and body["server_version"] == "0.3.0"
