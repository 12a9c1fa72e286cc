"""``gpufleet keys``: API keys: create (the secret is printed once), list, update, delete.

The server stores only a hash: ``create`` is the one chance to see a key, so the key alone goes
to stdout (``KEY=$(gpufleet keys create ci)`` captures it) and the reminder to stderr. A key is
named by its name or its id; an unknown one is bad usage (exit 2) and the line names the keys that
exist. ``update`` sends only the changes given; each restriction can also be removed
(``--no-expiry``, ``--all-models``, ``--unlimited-requests``, ``--unlimited-tokens``), which the
API expresses as that field sent as null.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    connect,
    err,
    fail,
    get_json,
    out,
    send,
    show,
)
from gpufleet.cli.errors import CommandFailed
from gpufleet.cli.lookup import KNOWN_SHOWN, unknown

keys_app = typer.Typer(help="API keys: create (printed once), list, update, delete.", no_args_is_help=True)

KeyArgument = Annotated[str, typer.Argument(help="Key name or id")]
ExpiresOption = Annotated[int | None, typer.Option("--expires-in-days", min=1, help="Expire this many days from now")]
ModelsOption = Annotated[
    str | None, typer.Option("--allowed-models", help="Only these models, comma-separated (default: every model)")
]
RequestsOption = Annotated[
    int | None, typer.Option("--requests-per-minute", min=1, max=1_000_000, help="Requests per minute at most")
]
TokensOption = Annotated[
    int | None, typer.Option("--tokens-per-day", min=1, help="Prompt + completion tokens per UTC day at most")
]


def expiry_in(days: int, now: datetime | None = None) -> str:
    """The ``expires_at`` the server wants: ``days`` from now, in UTC, ISO 8601."""
    return ((now or datetime.now(UTC)) + timedelta(days=days)).isoformat()


def model_list(value: str) -> list[str]:
    """``a, b,,c`` → ``["a", "b", "c"]``; bad usage when nothing is left."""
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models:
        fail("--allowed-models needs at least one model name (or use --all-models to allow every model)", EXIT_USAGE)
    return models


def when(value: str | None, never: str = "never") -> str:
    """A server timestamp as ``2026-05-01 12:00 UTC``; ``never`` for none."""
    if value is None:
        return never
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def limits(key: dict[str, Any]) -> str:
    """``60 req/min, 100000 tokens/day``, or ``unlimited``."""
    parts = []
    if key["requests_per_minute"] is not None:
        parts.append(f"{key['requests_per_minute']} req/min")
    if key["tokens_per_day"] is not None:
        parts.append(f"{key['tokens_per_day']} tokens/day")
    return ", ".join(parts) or "unlimited"


LIST_COLUMNS: list[Column] = [
    ("id", lambda k: k["id"]),
    ("name", lambda k: k["name"]),
    ("key prefix", lambda k: k["prefix"]),
    ("owner", lambda k: k["username"]),
    ("limits", limits),
    ("models", lambda k: k["allowed_models"] if k["allowed_models"] is not None else "all"),
    ("expires", lambda k: when(k["expires_at"])),
    ("last used", lambda k: when(k["last_used_at"])),
]


def find_key(client: httpx.Client, target: str) -> dict[str, Any]:
    """The key named ``target`` (name or id) among those the caller may manage; bad usage if none or several."""
    keys: list[dict[str, Any]] = get_json(client, "/api/api-keys", {"all": "true"})  # everyone's for admins
    by_id = [k for k in keys if str(k["id"]) == target]
    named = by_id or [k for k in keys if k["name"] == target]
    if len(named) == 1:
        return named[0]
    if named:
        owners = ", ".join(f"id {k['id']} of {k['username']}" for k in named)
        raise CommandFailed(f"{len(named)} keys are named {target!r} ({owners}): give the id", EXIT_USAGE)
    unknown("API key", target, [k["name"] for k in keys[:KNOWN_SHOWN]], len(keys), group="keys")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name to recognise the key by (unique among yours)")],
    expires_in_days: ExpiresOption = None,
    allowed_models: ModelsOption = None,
    requests_per_minute: RequestsOption = None,
    tokens_per_day: TokensOption = None,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Create an API key and print it: this is the only time it is shown."""
    body: dict[str, Any] = {"name": name}
    if expires_in_days is not None:
        body["expires_at"] = expiry_in(expires_in_days)
    if allowed_models is not None:
        body["allowed_models"] = model_list(allowed_models)
    if requests_per_minute is not None:
        body["requests_per_minute"] = requests_per_minute
    if tokens_per_day is not None:
        body["tokens_per_day"] = tokens_per_day
    with connect(server, api_key) as client:
        created: dict[str, Any] = send(client, "POST", "/api/api-keys", body, expected=201)
    if as_json:
        out.print_json(data=created)
        return
    out.print(created["key"], markup=False)
    err.print(
        f"created API key {created['name']} (id {created['id']}): store it now, it is not shown again",
        markup=False,
    )


@keys_app.command("list")
def list_keys(
    every_user: Annotated[bool, typer.Option("--all", help="Every user's keys (admins)")] = False,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Your API keys (never the secrets): limits, models, expiry, last use."""
    with connect(server, api_key) as client:
        keys: list[dict[str, Any]] = get_json(client, "/api/api-keys", {"all": "true"} if every_user else None)
    show(keys, LIST_COLUMNS, as_json)


def changes(
    expires_in_days: int | None,
    no_expiry: bool,
    allowed_models: str | None,
    all_models: bool,
    requests_per_minute: int | None,
    unlimited_requests: bool,
    tokens_per_day: int | None,
    unlimited_tokens: bool,
) -> dict[str, Any]:
    """The PATCH body: each field given, or null to lift it; bad usage for a field both set and lifted."""
    pairs: list[tuple[str, str, Any, bool, str]] = [
        ("expires_at", "--expires-in-days", expires_in_days, no_expiry, "--no-expiry"),
        ("allowed_models", "--allowed-models", allowed_models, all_models, "--all-models"),
        (
            "requests_per_minute",
            "--requests-per-minute",
            requests_per_minute,
            unlimited_requests,
            "--unlimited-requests",
        ),
        ("tokens_per_day", "--tokens-per-day", tokens_per_day, unlimited_tokens, "--unlimited-tokens"),
    ]
    body: dict[str, Any] = {}
    for field, option, value, lifted, lift_option in pairs:
        if value is not None and lifted:
            fail(f"{option} and {lift_option} contradict each other: give one", EXIT_USAGE)
        if lifted:
            body[field] = None
        elif value is not None:
            body[field] = value
    if "expires_at" in body and body["expires_at"] is not None:
        body["expires_at"] = expiry_in(body["expires_at"])
    if body.get("allowed_models") is not None:
        body["allowed_models"] = model_list(body["allowed_models"])
    if not body:
        options = ", ".join(option for _, option, *_ in pairs) + " or " + ", ".join(p[4] for p in pairs)
        fail(f"nothing to change: give {options}", EXIT_USAGE)
    return body


@keys_app.command("update")
def update(
    target: KeyArgument,
    expires_in_days: ExpiresOption = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expire")] = False,
    allowed_models: ModelsOption = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Allow every model")] = False,
    requests_per_minute: RequestsOption = None,
    unlimited_requests: Annotated[bool, typer.Option("--unlimited-requests", help="No request rate limit")] = False,
    tokens_per_day: TokensOption = None,
    unlimited_tokens: Annotated[bool, typer.Option("--unlimited-tokens", help="No daily token limit")] = False,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Change a key's expiry, models or limits (the next request sees them)."""
    body = changes(
        expires_in_days,
        no_expiry,
        allowed_models,
        all_models,
        requests_per_minute,
        unlimited_requests,
        tokens_per_day,
        unlimited_tokens,
    )
    with connect(server, api_key) as client:
        key = find_key(client, target)
        updated: dict[str, Any] = send(client, "PATCH", f"/api/api-keys/{key['id']}", body)
    if as_json:
        out.print_json(data=updated)
        return
    show([updated], LIST_COLUMNS, as_json=False)


@keys_app.command("delete")
def delete(
    target: KeyArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete an API key: requests with it are refused at once."""
    with connect(server, api_key) as client:
        key = find_key(client, target)
        send(client, "DELETE", f"/api/api-keys/{key['id']}", expected=204)
    out.print(f"deleted API key {key['name']} (id {key['id']}, {key['prefix']}…)", markup=False)
