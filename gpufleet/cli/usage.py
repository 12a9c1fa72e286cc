"""``gpufleet usage``: requests and tokens through the gateway by model, user, API key or day over a
range of UTC days (``GET /api/usage``).

Admins see everyone's usage, a user their own (the server decides). The table has one row per group
and a last row with the sums of every column; ``--json`` prints the server's rows as they are (no
total row: a script adds them up itself). ``--from``/``--to`` are inclusive UTC days; either may be
left out for an open range. A range that ends before it starts is bad usage (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    EXIT_USAGE,
    ApiKeyOption,
    JsonOption,
    ServerOption,
    cell,
    connect,
    fail,
    get_json,
    out,
)
from gpufleet.schemas.usage import UsageGroup

COUNTS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")


def _user(row: dict[str, Any]) -> str:
    return row["username"] or f"(deleted user {row['user_id']})"


# The columns naming a group, per grouping: header, value from one row of the server's answer.
GROUP_COLUMNS: dict[UsageGroup, list[tuple[str, Callable[[dict[str, Any]], Any]]]] = {
    UsageGroup.MODEL: [("model", lambda row: row["model_name"])],
    UsageGroup.USER: [("user", _user)],
    UsageGroup.KEY: [("key", lambda row: row["api_key_name"]), ("user", _user)],
    UsageGroup.DAY: [("day", lambda row: row["day"])],
}


def _day(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a day: give it as YYYY-MM-DD", EXIT_USAGE)


def _span(since: date | None, until: date | None) -> str:
    if since is None and until is None:
        return "all time"
    return f"{since or 'the start'} to {until or 'today'} (UTC)"


def usage_table(rows: list[dict[str, Any]], group_by: UsageGroup, title: str) -> Table:
    """One row per group, then the sums: total tokens = prompt + completion, as the server counts."""
    names = GROUP_COLUMNS[group_by]
    table = Table(*(header for header, _ in names), title=title)
    for header in ("requests", "prompt tokens", "completion tokens", "total tokens"):
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(cell(value(row)) for _, value in names), *(f"{row[count]:,}" for count in COUNTS))
    table.add_section()
    sums = [f"{sum(row[count] for row in rows):,}" for count in COUNTS]
    table.add_row("total", *([""] * (len(names) - 1)), *sums, style="bold")
    return table


def usage(
    by: Annotated[UsageGroup, typer.Option("--by", help="Group by model, user, key or day")] = UsageGroup.MODEL,
    since: Annotated[str | None, typer.Option("--from", help="First UTC day, YYYY-MM-DD (inclusive)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last UTC day, YYYY-MM-DD (inclusive)")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens and requests by model, user or API key."""
    first, last = _day("--from", since), _day("--to", until)
    if first is not None and last is not None and first > last:
        fail(f"--from {first} is after --to {last}: swap them", EXIT_USAGE)
    params: dict[str, Any] = {"group_by": by.value}
    if first is not None:
        params["from"] = first.isoformat()
    if last is not None:
        params["to"] = last.isoformat()
    with connect(server, api_key) as client:
        rows: list[dict[str, Any]] = get_json(client, "/api/usage", params)
    if as_json:
        out.print_json(data=rows)
        return
    if not rows:
        out.print(f"no requests through the gateway in {_span(first, last)}")
        return
    out.print(usage_table(rows, by, f"usage by {by.value}, {_span(first, last)}"))
