"""The web UI at ``/``: its built files, and ``index.html`` for every client-side route.

``/models``, ``/workers/3``, ``/playground`` … are the single-page app's routes, so any GET the API
does not answer gets ``index.html`` (never cached: a new build takes effect at once), and files
of the build (``/assets/…``, hashed names) are served as they are (cached for a year, gzip-compressed
for a browser that accepts it, compressed once per file; one that is not there is a 404, never the
page in its place). The API's
own prefixes keep their meaning: an unknown ``/api/…`` path stays a JSON 404. Without a build, the
page says how to make one.
"""

from __future__ import annotations

import gzip
import html
import mimetypes
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Scope

from gpufleet.server.ui_assets import UiAssets

RESERVED = ("api", "v1", "metrics", "healthz", "docs", "redoc", "openapi.json")
IMMUTABLE = "public, max-age=31536000, immutable"

NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>gpufleet</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>gpufleet's web UI is not built</h1><p>{problem}</p>
<p>The API works without it: <a href="/docs">/docs</a>; the OpenAI-compatible endpoint is <code>/v1</code>.</p>
</body></html>"""


def _file(root: Path, path: str) -> Path | None:
    """The build's file at ``path``, if there is one (never outside ``root``)."""
    if not path:
        return None
    target = (root / path).resolve()
    if root.resolve() not in target.parents or not target.is_file():
        return None
    return target


@lru_cache(maxsize=256)
def _compressed(path: Path, modified_ns: int) -> bytes:
    """A build file, gzip-compressed (cached: the files of a build never change; ``modified_ns`` keys a rebuild)."""
    return gzip.compress(path.read_bytes(), compresslevel=9)


def _asset(found: Path, accept_encoding: str) -> Response:
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
    media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    if "gzip" in accept_encoding and found.suffix in (".js", ".css", ".svg", ".json", ".map"):
        body = _compressed(found, found.stat().st_mtime_ns)
        return Response(body, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"})
    return FileResponse(found, media_type=media_type, headers=headers)


class UiRoute(Route):
    """Matches GET and HEAD outside the API's prefixes, and nothing else: a POST to an unknown path,
    or any unknown ``/api/…`` path, stays the API's 404 (not a 405 from this route)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return Match.NONE, {}
        if scope["path"].lstrip("/").split("/", 1)[0] in RESERVED:
            return Match.NONE, {}
        return super().matches(scope)


def install(app: FastAPI, assets: UiAssets) -> None:
    """Add the catch-all route; call after every API router (routes match in order)."""

    async def web_ui(request: Request) -> Response:
        path = request.path_params["path"]
        if not assets.available:
            return HTMLResponse(NOT_BUILT.format(problem=html.escape(assets.problem or "")), status_code=200)
        found = _file(assets.directory, path)
        if found is not None and path.startswith("assets/"):
            return _asset(found, request.headers.get("accept-encoding", ""))
        if found is not None and found.name != "index.html":
            return FileResponse(found, headers={"Cache-Control": "no-cache"})
        if path.startswith("assets/"):  # an old page asking for a file of an earlier build: not HTML
            return Response(status_code=404)
        return FileResponse(assets.index, headers={"Cache-Control": "no-cache"})

    app.router.routes.append(UiRoute("/{path:path}", web_ui, methods=["GET", "HEAD"], include_in_schema=False))
