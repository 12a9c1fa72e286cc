"""The web UI at ``/``: its built files, and ``index.html`` for every client-side route.

``/models``, ``/workers/3``, ``/playground`` … are the single-page app's routes, so any GET the API
does not answer gets ``index.html`` (never cached: a new build takes effect at once), and files
of the build (``/assets/…``, hashed names) are served as they are (cached for a year). The API's
own prefixes keep their meaning: an unknown ``/api/…`` path stays a JSON 404. Without a build, the
page says how to make one.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def install(app: FastAPI, assets: UiAssets) -> None:
    """Add the catch-all route; call after every API router (routes match in order)."""

    @app.get("/{path:path}", include_in_schema=False)
    async def web_ui(path: str) -> Response:
        if path.split("/", 1)[0] in RESERVED:
            raise StarletteHTTPException(status_code=404)
        if not assets.available:
            return HTMLResponse(NOT_BUILT.format(problem=html.escape(assets.problem or "")), status_code=200)
        found = _file(assets.directory, path)
        if found is not None and found.name != "index.html":
            cache = IMMUTABLE if path.startswith("assets/") else "no-cache"
            return FileResponse(found, headers={"Cache-Control": cache})
        return FileResponse(assets.index, headers={"Cache-Control": "no-cache"})
