"""Request-body limits (issue 12 finding 6): 413 before the body is read in full, on every route."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from gpufleet.common.units import MiB
from tests.support.server import ADMIN_PASSWORD, RunningServer


def _login_body(size: int) -> bytes:
    """A JSON login body of about ``size`` bytes (the padding is in the password)."""
    return json.dumps({"username": "admin", "password": "x" * size}).encode()


async def test_a_2_mib_login_is_413_with_a_json_detail_and_a_normal_login_still_works(server: RunningServer) -> None:
    async with server.client() as client:
        response = await client.post(
            "/api/auth/login", content=_login_body(2 * MiB), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["detail"].startswith("request body is larger than the 1 MiB limit of /api")
        assert (await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})).is_success


async def _announce(server: RunningServer, path: str, size: int, credential: str | None = None) -> bytes:
    """Raw HTTP: headers announcing a ``size``-byte body, and not one byte of it sent; the answer."""
    url = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    auth = f"Authorization: Bearer {credential}\r\n" if credential else ""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {size}\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout=10)  # the server answers and closes
    finally:
        writer.close()


async def test_a_declared_oversize_body_is_answered_before_it_is_sent(server: RunningServer) -> None:
    answer = await _announce(server, "/api/auth/login", 150 * MiB)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"limit of /api" in answer


async def test_a_chunked_body_over_the_limit_is_cut_off(server: RunningServer) -> None:
    """No Content-Length: the body is counted as it streams, and the 413 arrives while the client is
    still sending (raw HTTP, since an HTTP client library reads no answer before it has sent all)."""
    url = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"POST /api/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    answer = asyncio.create_task(reader.readline())
    chunk = b"x" * (64 * 1024)
    sent = 0
    while not answer.done() and sent < 64 * MiB:
        try:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        except ConnectionError:
            break  # the server answered and closed: the rest is not read
        sent += len(chunk)
    status_line = await asyncio.wait_for(answer, timeout=10)
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert sent < 16 * MiB  # far from the 64 MiB the client was ready to send
    writer.close()


async def test_worker_reports_take_more_than_1_mib_and_v1_keeps_its_32_mib(server: RunningServer) -> None:
    async with await server.admin() as admin:
        # 2 MiB to a worker route gets past the body limit (then 401/403/404/422, not 413).
        heartbeat = await admin.post("/api/workers/1/heartbeat", content=b" " * (2 * MiB))
        assert heartbeat.status_code != 413, heartbeat.text
        key = (await admin.post("/api/api-keys", json={"name": "big"})).json()["key"]
    async with server.client(key) as client:
        small = await client.post("/v1/chat/completions", content=b" " * (2 * MiB))
        assert small.status_code != 413  # /v1 is not held to /api's 1 MiB
    answer = await _announce(server, "/v1/chat/completions", 33 * MiB, key)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "body_too_large" and "32 MiB limit of /v1" in error["message"]


async def test_anonymous_callers_still_get_401_before_any_body_limit(server: RunningServer) -> None:
    async with server.client() as client:
        response = await client.post("/api/models", content=b" " * (2 * MiB))
        assert response.status_code == 401
