"""The web UI at ``/``: the build's files, ``index.html`` for every client-side route, and the API's
paths untouched; without a build, a page saying how to make one."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gpufleet.server.ui_assets import UiAssets, ensure_built, is_stale
from tests.support.server import RunningServer, running_server

INDEX = "<!doctype html><title>gpufleet</title><div id=root></div>"


@pytest.fixture
async def ui_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    build = tmp_path / "build"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text(INDEX)
    (build / "assets" / "index-abc123.js").write_text("console.log('ui')")
    (build / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("not for the web")
    async with running_server(tmp_path / "data", ui_assets=UiAssets(build)) as server:
        yield server


async def test_client_routes_get_the_page_and_files_are_served(ui_server: RunningServer) -> None:
    async with ui_server.client() as anonymous:
        for path in ("/", "/models", "/workers/3", "/instances/12", "/playground", "/usage?from=2026-01-01"):
            page = await anonymous.get(path)
            assert page.status_code == 200 and page.text == INDEX, path
            assert page.headers["cache-control"] == "no-cache"  # a new build takes effect at once
        script = await anonymous.get("/assets/index-abc123.js")  # httpx asks for gzip and decodes it
        assert script.text == "console.log('ui')" and "immutable" in script.headers["cache-control"]
        assert "javascript" in script.headers["content-type"] and script.headers["content-encoding"] == "gzip"
        plain = await anonymous.get("/assets/index-abc123.js", headers={"accept-encoding": "identity"})
        assert plain.text == "console.log('ui')" and "content-encoding" not in plain.headers
        assert (await anonymous.get("/favicon.svg")).text == "<svg/>"
        assert (await anonymous.get("/assets/index-old999.js")).status_code == 404  # never HTML as a script
        for sneaky in ("/assets/..%2F..%2Fsecret.txt", "/..%2Fsecret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"):
            assert "not for the web" not in (await anonymous.get(sneaky)).text, sneaky


async def test_the_api_keeps_its_paths(ui_server: RunningServer) -> None:
    async with ui_server.client() as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/openapi.json")).json()["info"]["title"] == "gpufleet"
        assert "swagger" in (await anonymous.get("/docs")).text.lower()
        assert (await anonymous.get("/metrics")).status_code == 200
        assert (await anonymous.get("/api/workers")).status_code == 401  # still the API, still guarded
        assert (await anonymous.get("/v1/models")).json()["error"]["code"] == "invalid_api_key"
    async with await ui_server.admin() as admin:
        missing = await admin.get("/api/no-such-route")
        assert missing.status_code == 404 and "no such route" in missing.json()["detail"]
        assert (await admin.post("/somewhere")).status_code == 404  # not a 405 from the page route
        assert (await admin.post("/v1/nothing-here", json={})).json()["error"]["code"] == "unknown_route"


async def test_without_a_build_the_page_says_how_to_make_one(tmp_path: Path) -> None:
    assets = ensure_built(source=tmp_path / "no-source", built=tmp_path / "empty")
    assert not assets.available and assets.problem and "npm ci && npm run build" in assets.problem
    async with running_server(tmp_path / "data", ui_assets=assets) as server, server.client() as anonymous:
        page = await anonymous.get("/models")
        assert page.status_code == 200 and "web UI is not built" in page.text and "npm ci" in page.text
        assert (await anonymous.get("/healthz")).status_code == 200


def test_a_build_is_stale_when_a_source_file_is_newer(tmp_path: Path) -> None:
    source, built = tmp_path / "ui", tmp_path / "built"
    (source / "src" / "pages").mkdir(parents=True)
    built.mkdir()
    page = source / "src" / "pages" / "Models.tsx"
    page.write_text("export {}")
    assert is_stale(source, built)  # never built
    (built / "index.html").write_text(INDEX)
    old = time.time() - 60
    os.utime(page, (old, old))
    assert not is_stale(source, built)
    page.write_text("export const changed = 1")  # an edit after the build
    assert is_stale(source, built)
