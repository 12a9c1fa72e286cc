"""Finding the thing a person named on the command line: a name, or an id.

Every client command accepts either (``workers show gpu1`` or ``workers show 3``). An exact name
wins over an id, since names are what people read in listings (a worker may be named ``3``).
A name that matches nothing is bad usage: exit 2 with one line naming the first few that exist,
so the next try can be right.

Lookups ask the server only for what they need (``?q=`` narrows the list to names containing the
argument; an id is read directly), so they stay cheap on a cluster of thousands of workers.
"""

from __future__ import annotations

from typing import Any, NoReturn

import httpx

from gpufleet.cli.client import EXIT_USAGE, get_json
from gpufleet.cli.errors import CommandFailed

KNOWN_SHOWN = 5  # names listed in the "unknown name" line
LONGEST_NAME = 63  # common.labels.WORKER_NAME


def unknown(what: str, given: str, known: list[str], total: int, group: str | None = None) -> NoReturn:
    """Exit 2: ``no worker 'x'; the workers are: a, b, c and 7 more (see `gpufleet workers list`)``.

    ``group``: the command group that lists them, when it is not ``what`` + "s"."""
    names = ", ".join(known) or "none yet"
    more = f" and {total - len(known)} more" if total > len(known) else ""
    raise CommandFailed(
        f"no {what} {given!r}; the {what}s are: {names}{more} (see `gpufleet {group or what + 's'} list`)",
        EXIT_USAGE,
    )


def pick(
    items: list[dict[str, Any]], given: str, what: str, name_key: str = "name", group: str | None = None
) -> dict[str, Any]:
    """The item of ``items`` named ``given``, else the one whose id it is; else exit 2 (``unknown``)."""
    for item in items:
        if item[name_key] == given:
            return item
    if given.isdigit():
        for item in items:
            if item["id"] == int(given):
                return item
    unknown(what, given, [item[name_key] for item in items[:KNOWN_SHOWN]], len(items), group)


def find_worker(client: httpx.Client, given: str) -> dict[str, Any]:
    """The worker (``WorkerPublic`` as JSON) named ``given``, else the one with id ``given``."""
    if 0 < len(given) <= LONGEST_NAME:
        for worker in get_json(client, "/api/workers", {"q": given}):
            if worker["name"] == given:
                return dict(worker)
    if given.isdigit():
        response = client.get(f"/api/workers/{int(given)}")
        if response.status_code == 200:
            return dict(response.json())
    page = get_json(client, "/api/workers", {"limit": KNOWN_SHOWN})
    unknown("worker", given, [worker["name"] for worker in page["items"]], page["total"])
