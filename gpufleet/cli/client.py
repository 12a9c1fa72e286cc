"""What every client command shares: the consoles, the exit codes, the ``--server-url`` and
``--api-key`` options, an HTTP client to the server, listings as tables or JSON, and how a refusal
becomes an error line.

The credential is the ``--api-key`` (or ``GPUFLEET_API_KEY``), else the session ``gpufleet login``
stored for that server (``credentials.py``). An ``https://`` server's certificate is checked against
``GPUFLEET_SERVER_CA`` (a CA file) when set, else the system trust store (``SSL_CERT_FILE`` works too).

Exit codes (the same for every command): 0 done, 1 the server or the machine refused (the line
says why), 2 bad usage (a missing option, an unknown name), 3 reserved for "answered, but no"
(``models preview`` when nothing fits).
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gpufleet.cli import credentials
from gpufleet.cli.errors import CommandFailed, explain
from gpufleet.common.tls import TlsError, client_ssl_context, untrusted_reason

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO = 3
DEFAULT_SERVER = "http://127.0.0.1:8080"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ServerOption = Annotated[
    str,
    typer.Option(
        "--server-url",
        "--server",
        envvar=["GPUFLEET_SERVER_URL", "GPUFLEET_SERVER"],
        help="Server URL",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(envvar="GPUFLEET_API_KEY", help="An API key (default: the session of `gpufleet login`)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def error_line(message: str) -> None:
    """``error: <message>`` on stderr; the message is printed as it is (no rich markup in it)."""
    err.print(f"[bold red]error:[/] {escape(message)}")


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print one error line and exit with ``code``."""
    error_line(message)
    raise typer.Exit(code)


CA_HINT = "give its CA with GPUFLEET_SERVER_CA=FILE"


def server_verify() -> ssl.SSLContext:
    """The certificates an ``https://`` server must present: ``GPUFLEET_SERVER_CA``, else the system store."""
    ca = os.environ.get("GPUFLEET_SERVER_CA")
    try:
        return client_ssl_context(Path(ca) if ca else None, "GPUFLEET_SERVER_CA")
    except TlsError as exc:
        fail(exc.message, EXIT_USAGE)


def unreachable(server: str, exc: httpx.HTTPError) -> str:
    """The error line for a request to ``server`` that got no answer."""
    return f"talking to {server}: {untrusted_reason(exc, CA_HINT) or f'{type(exc).__name__} {exc}'}"


def detail(response: httpx.Response) -> str:
    """What the server said went wrong: its ``detail`` (JSON) or the body as text."""
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    return response.text


def refused(method: str, path: str, response: httpx.Response) -> CommandFailed:
    return CommandFailed(f"{method} {path}: HTTP {response.status_code}: {detail(response)}")


def get_json(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    response = client.get(path, params=params or {})
    if response.status_code != 200:
        raise refused("GET", path, response)
    return response.json()


@contextmanager
def connect(server: str, api_key: str | None, timeout: httpx.Timeout | float = 30.0) -> Iterator[httpx.Client]:
    """An HTTP client to ``server`` with the API key; every failure inside becomes one error line.

    ``CommandFailed`` keeps its exit code, an HTTP error (the server unreachable, a broken
    connection) exits 1 naming the server, Ctrl-C exits 130.
    """
    credential = api_key or credentials.load(server)
    if not credential:
        fail(f"not logged in to {server}: run `gpufleet login`, or give --api-key (or GPUFLEET_API_KEY)", EXIT_USAGE)
    headers = {"Authorization": f"Bearer {credential}"}
    try:
        with httpx.Client(
            base_url=server.rstrip("/"), headers=headers, timeout=timeout, verify=server_verify()
        ) as client:
            yield client
    except CommandFailed as exc:
        fail(explain(exc), exc.exit_code)
    except httpx.HTTPError as exc:
        fail(unreachable(server, exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def send(client: httpx.Client, method: str, path: str, body: Any = None, expected: int = 200) -> Any:
    """``method path`` with a JSON ``body``; the JSON answer (None for 204), or the server's refusal."""
    response = client.request(method, path, json=body)
    if response.status_code != expected:
        raise refused(method, path, response)
    return None if response.status_code == 204 else response.json()


Column = tuple[str, Callable[[dict[str, Any]], Any]]  # header, value from one row


def show(rows: list[dict[str, Any]], columns: list[Column], as_json: bool, title: str | None = None) -> None:
    """A listing: JSON (the server's objects as they are) or a table of ``columns``."""
    if as_json:
        out.print_json(data=rows)
        return
    table = Table(*(header for header, _ in columns), title=title)
    for row in rows:
        table.add_row(*(cell(value(row)) for _, value in columns))
    out.print(table)


def show_one(row: dict[str, Any], fields: list[Column], as_json: bool) -> None:
    """One object: JSON, or a two-column table of ``fields``."""
    if as_json:
        out.print_json(data=row)
        return
    table = Table("field", "value", show_header=False)
    for header, value in fields:
        table.add_row(header, cell(value(row)))
    out.print(table)


def cell(value: Any) -> str:
    """How a value reads in a table: empty for none, lists joined, escaped for rich."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return escape(", ".join(str(v) for v in value))
    if isinstance(value, dict):
        return escape(", ".join(f"{k}={v}" for k, v in value.items()))
    return escape(str(value))


def confirm_delete(what: str, question: str) -> None:
    """Ask ``question`` before deleting ``what``; with no terminal to ask on, exit 2 asking for
    ``--yes``; an answer of no exits 1 with nothing deleted."""
    if not sys.stdin.isatty():
        fail(f"give --yes to delete {what} without being asked", EXIT_USAGE)
    if not typer.confirm(question, default=False):
        fail(f"{what} kept: nothing deleted")
