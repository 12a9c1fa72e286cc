"""``gpufleet users``: the accounts that sign in to a server (admins only): create, list, update, delete.

A user is named by its username or its id (``users update bob``, ``users update 3``); a name that
matches no user is bad usage (exit 2) and the line lists the users there are. A username wins over
an id when both could match (a user may be called ``7``).

Passwords never have to be on the command line: ``create`` asks for one (hidden, twice) when
``--password`` is left out. ``GPUFLEET_PASSWORD`` is deliberately not read here: it is the caller's
own password for ``gpufleet login``, and a new account must not silently get it.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import httpx
import typer

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    EXIT_USAGE,
    ApiKeyOption,
    Column,
    JsonOption,
    ServerOption,
    confirm_delete,
    connect,
    fail,
    get_json,
    out,
    send,
    show,
    show_one,
)
from gpufleet.cli.lookup import pick
from gpufleet.schemas.users import Role

users_app = typer.Typer(help="Users (admins): create, list, update, delete.", no_args_is_help=True)

RoleOption = Annotated[Role | None, typer.Option("--role", help="user or admin")]


def _when(value: str | None) -> str:
    """``2026-12-01T10:04:05.123+00:00`` → ``2026-12-01 10:04`` (UTC, as the server stores it)."""
    return value[:16].replace("T", " ") if value else ""


COLUMNS: list[Column] = [
    ("id", lambda u: u["id"]),
    ("name", lambda u: u["username"]),
    ("role", lambda u: u["role"]),
    ("created", lambda u: _when(u["created_at"])),
    ("must change password", lambda u: "yes" if u["must_change_password"] else "no"),
]


def find_user(client: httpx.Client, name: str) -> dict[str, Any]:
    """The user called ``name``, else the one whose id is ``name``; an unknown one is bad usage (2)."""
    return pick(get_json(client, "/api/users"), name, "user", name_key="username")


def _new_password(password: str | None) -> str:
    if password is not None:
        return password
    if not sys.stdin.isatty():
        fail("give the new user's password with --password (there is no terminal to ask on)", EXIT_USAGE)
    return str(typer.prompt("Password for the new user", hide_input=True, confirmation_prompt=True))


@users_app.command("list")
def list_users(
    server: ServerOption = DEFAULT_SERVER, api_key: ApiKeyOption = None, as_json: JsonOption = False
) -> None:
    """List the users: name, role, when created, and whether they must change their password."""
    with connect(server, api_key) as client:
        users = get_json(client, "/api/users")
    show(users, COLUMNS, as_json)


@users_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Username: letters, digits and . _ @ -")],
    role: Annotated[Role, typer.Option("--role", help="user or admin")] = Role.USER,
    password: Annotated[
        str | None, typer.Option(help="Password, at least 8 characters (asked, hidden, if left out)")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a user who signs in with NAME and the password."""
    secret = _new_password(password)
    with connect(server, api_key) as client:
        user = send(client, "POST", "/api/users", {"username": name, "password": secret, "role": role.value}, 201)
    show_one(user, COLUMNS, as_json)


@users_app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="Username or id")],
    role: RoleOption = None,
    password: Annotated[
        str | None,
        typer.Option(help="A new password; the user's sessions end and they must change it at next sign-in"),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a user's role or reset their password."""
    changes: dict[str, Any] = {"role": role.value if role else None, "password": password}
    changes = {field: value for field, value in changes.items() if value is not None}
    if not changes:
        fail("nothing to change: give --role and/or --password", EXIT_USAGE)
    with connect(server, api_key) as client:
        user = find_user(client, name)
        updated = send(client, "PATCH", f"/api/users/{user['id']}", changes)
    show_one(updated, COLUMNS, as_json)


@users_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Username or id")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a user, their sessions and their API keys."""
    with connect(server, api_key) as client:
        user = find_user(client, name)
        if not yes:
            confirm_delete(f"user {user['username']}", f"Delete user {user['username']} (id {user['id']})?")
        send(client, "DELETE", f"/api/users/{user['id']}", expected=204)
    out.print(f"deleted user {user['username']} (id {user['id']})")
