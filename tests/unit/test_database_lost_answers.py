"""A lost database answers 503 (retry, or fail over to another server), never a bare 500; other
database errors stay internal errors (they are bugs, not outages)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError

from gpufleet.server import errors


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/api/lost")
    async def lost() -> None:
        raise OperationalError("SELECT 1", None, Exception("connection to server was lost"))

    @app.get("/api/refused")
    async def refused() -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    @app.get("/v1/lost")
    async def lost_v1() -> None:
        raise OperationalError("SELECT 1", None, Exception("server closed the connection"))

    @app.get("/api/bug")
    async def bug() -> None:
        raise IntegrityError("INSERT", None, Exception("UNIQUE constraint failed"))

    return app


@pytest.mark.parametrize(("path", "status"), [("/api/lost", 503), ("/api/refused", 503), ("/api/bug", 500)])
async def test_a_lost_database_is_503_and_a_constraint_error_is_500(path: str, status: int) -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(path)
    assert response.status_code == status, response.text
    if status == 503:
        detail = "the database is unavailable; try again shortly"
        assert response.json() == {"detail": detail, "code": "database_unavailable"}


async def test_v1_answers_a_lost_database_in_openai_shape() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/v1/lost")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
