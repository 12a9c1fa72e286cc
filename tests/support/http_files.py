"""A local HTTP file server that honours Range requests, speaking the Hugging Face ``resolve`` file API.

``GET /{owner}/{repo}/resolve/{revision}/{path}`` serves ``root/{owner}/{repo}/{path}`` (revision
ignored) with 206 partial content for ``Range: bytes=a-b``; every request is logged so tests can
check that only the header was read.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RESOLVE = re.compile(r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+)/resolve/[^/]+/(?P<path>.+)$")


@dataclass
class FileServer:
    url: str
    served_bytes: list[int] = field(default_factory=list)


@contextmanager
def hf_file_server(root: Path) -> Iterator[FileServer]:
    record = FileServer(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            match = RESOLVE.match(self.path.split("?")[0])
            target = root / match.group("owner") / match.group("repo") / match.group("path") if match else None
            if target is None or not target.is_file():
                self.send_error(404, "Entry not found")
                return
            size = target.stat().st_size
            requested = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            start, end = (int(requested.group(1)), int(requested.group(2) or size - 1)) if requested else (0, size - 1)
            if start >= size:
                self.send_error(416)
                return
            end = min(end, size - 1)
            with target.open("rb") as handle:
                handle.seek(start)
                body = handle.read(end - start + 1)
            self.send_response(206 if requested else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            # Counted before it is sent: a client that has the body must find it counted (this
            # handler's thread may otherwise record it after the client has already looked).
            record.served_bytes.append(len(body))
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
