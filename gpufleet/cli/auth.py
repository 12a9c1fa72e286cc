"""``gpufleet login`` and ``gpufleet logout``: a session for the client commands, so scripts and
people need not pass an API key to each command.

``login`` asks for the username and the password (hidden) unless given, signs in, and stores the
session token for that server URL (``credentials.py``: mode 0600). ``logout`` ends the session on
the server and forgets the token; a server that cannot be reached still has the token forgotten.
"""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from gpufleet.cli import credentials
from gpufleet.cli.client import (
    DEFAULT_SERVER,
    EXIT_USAGE,
    ServerOption,
    detail,
    fail,
    out,
    server_verify,
    unreachable,
)


def login(
    username: Annotated[str | None, typer.Option("--username", "-u", help="Username (asked if left out)")] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="GPUFLEET_PASSWORD", help="Password (asked, hidden, if left out)"),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Sign in to a server and keep the session for the other commands."""
    username = username or typer.prompt("Username")
    password = password or typer.prompt("Password", hide_input=True)
    try:
        response = httpx.post(
            f"{server.rstrip('/')}/api/auth/login",
            json={"username": username, "password": password},
            timeout=30,
            trust_env=False,
            verify=server_verify(),
        )
    except httpx.HTTPError as exc:
        fail(unreachable(server, exc))
    if response.status_code in (401, 422):
        fail(f"sign-in refused: {detail(response)}", EXIT_USAGE if response.status_code == 422 else 1)
    if response.status_code != 200:
        fail(f"POST /api/auth/login: HTTP {response.status_code}: {detail(response)}")
    path = credentials.save(server, str(response.json()["access_token"]))
    out.print(f"logged in to {server} as {username}; the session is kept in {path}")


def logout(server: ServerOption = DEFAULT_SERVER) -> None:
    """End the stored session on the server and forget it here."""
    token = credentials.load(server)
    if token is None:
        out.print(f"not logged in to {server}")
        return
    try:
        httpx.post(
            f"{server.rstrip('/')}/api/auth/logout",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            trust_env=False,
            verify=server_verify(),
        )
    except httpx.HTTPError as exc:  # forgotten here all the same; the session expires on its own
        out.print(f"could not reach {server} ({type(exc).__name__}); the session is forgotten here")
    credentials.forget(server)
    out.print(f"logged out of {server}")
