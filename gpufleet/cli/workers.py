"""``gpufleet workers``: Workers: list, show, label, drain for maintenance, undrain, delete.

A worker is named by its name or its id (``lookup.find_worker``). Everything here goes through
the admin routes of ``/api/workers``:

- ``label NAME k=v k2-`` reads the worker's labels, applies the changes (``label_changes``) and
  sends the whole map (``PATCH`` replaces it). The server keeps ``os``, ``arch`` and ``gpu-vendor``
  from the hardware: removing one is reported as kept, changing one is refused (exit 1).
- ``drain`` sets the maintenance flag (``PATCH {"state": "maintenance"}``): running instances stay,
  nothing new is placed there. A ready worker then shows ``maintenance``; one that stops
  heartbeating still shows ``not_ready`` (that it is dead matters more). ``undrain`` clears it.
- ``delete`` forgets the worker; its instances go back to ``pending`` to be placed elsewhere. A
  worker that is still running registers again at its next heartbeat, so stop it first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    EXIT_USAGE,
    ApiKeyOption,
    Column,
    JsonOption,
    ServerOption,
    cell,
    confirm_delete,
    connect,
    err,
    fail,
    get_json,
    out,
    send,
    show,
    show_one,
)
from gpufleet.cli.devices import DEVICE_COLUMNS
from gpufleet.cli.label_changes import parse_label_changes
from gpufleet.cli.lookup import find_worker
from gpufleet.common.clock import as_utc, utcnow
from gpufleet.common.units import format_bytes

workers_app = typer.Typer(
    help="Workers: list, show, label, drain for maintenance, undrain, delete.", no_args_is_help=True
)

WorkerArgument = Annotated[str, typer.Argument(help="Worker name or id")]


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """How long ago ``timestamp`` (ISO 8601) was, in its largest unit: ``4s``, ``12m``, ``3h``, ``2d``."""
    if timestamp is None:
        return "never"
    seconds = max(0, int(((now or utcnow()) - as_utc(datetime.fromisoformat(timestamp))).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def state_of(worker: dict[str, Any]) -> str:
    """The state, and "drained" beside a liveness state that hides the maintenance flag."""
    drained = worker.get("maintenance") and worker["state"] != "maintenance"
    return f"{worker['state']} (drained)" if drained else str(worker["state"])


def used_of(used: int, total: int) -> str:
    return f"{format_bytes(used)} / {format_bytes(total)}"


COLUMNS: list[Column] = [
    ("id", lambda w: w["id"]),
    ("name", lambda w: w["name"]),
    ("state", state_of),
    ("ip", lambda w: w["ip"]),
    ("labels", lambda w: w["labels"]),
    ("GPUs", lambda w: w["gpu_count"]),
    ("VRAM used", lambda w: used_of(w["vram_used"], w["vram_total"])),
    ("RAM used", lambda w: used_of(w["memory_used"], w["memory_total"])),
    ("heartbeat", lambda w: age(w["heartbeat_at"])),
]

FIELDS: list[Column] = [
    ("id", lambda w: w["id"]),
    ("name", lambda w: w["name"]),
    ("state", state_of),
    ("state message", lambda w: w["state_message"]),
    ("address", lambda w: f"{w['ip']}:{w['port']}"),
    ("labels", lambda w: w["labels"]),
    ("GPUs", lambda w: w["gpu_count"]),
    ("VRAM used", lambda w: used_of(w["vram_used"], w["vram_total"])),
    ("RAM used", lambda w: used_of(w["memory_used"], w["memory_total"])),
    ("CPU cores", lambda w: w["cpu_cores"]),
    ("reserved", lambda w: {k: format_bytes(v) for k, v in w["system_reserved"].items()}),
    ("os / arch", lambda w: f"{w['os'] or '?'} / {w['arch'] or '?'}"),
    ("gpufleet", lambda w: w["gpufleet_version"]),
    ("engines", lambda w: w["engines"]),
    ("heartbeat", lambda w: f"{w['heartbeat_at'] or ''} ({age(w['heartbeat_at'])})"),
    ("created", lambda w: w["created_at"]),
    ("updated", lambda w: w["updated_at"]),
]


@workers_app.command("list")
def list_workers(
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every worker: state, address, labels, GPUs, memory and its last heartbeat."""
    with connect(server, api_key) as client:
        workers = get_json(client, "/api/workers")
    show(workers, COLUMNS, as_json)


@workers_app.command("show")
def show_worker(
    name: WorkerArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """One worker with every field, and its devices."""
    with connect(server, api_key) as client:
        worker = find_worker(client, name)
    show_one(worker, FIELDS, as_json)
    if not as_json and worker["devices"]:
        table = Table(*(header for header, _ in DEVICE_COLUMNS), title="devices")
        for device in worker["devices"]:
            table.add_row(*(cell(value(device)) for _, value in DEVICE_COLUMNS))
        out.print(table)


@workers_app.command("label")
def label(
    name: WorkerArgument,
    changes: Annotated[list[str], typer.Argument(help="key=value to set, key- to remove", show_default=False)],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set (k=v) and remove (k-) labels of a worker; prints the labels it has then."""
    try:
        parsed = parse_label_changes(changes)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    with connect(server, api_key) as client:
        worker = find_worker(client, name)
        updated = send(client, "PATCH", f"/api/workers/{worker['id']}", {"labels": parsed.apply(worker["labels"])})
    kept = [key for key in parsed.remove if key in updated["labels"]]
    if kept:
        err.print(f"note: kept {', '.join(kept)}: set automatically from the worker's hardware")
    if as_json:
        out.print_json(data=updated)
        return
    for key, value in sorted(updated["labels"].items()):
        out.print(cell(f"{key}={value}"))


def _set_maintenance(name: str, state: str, server: str, api_key: str | None) -> dict[str, Any]:
    with connect(server, api_key) as client:
        worker = find_worker(client, name)
        return dict(send(client, "PATCH", f"/api/workers/{worker['id']}", {"state": state}))


def _print_state(worker: dict[str, Any], done: str, as_json: bool) -> None:
    if as_json:
        out.print_json(data=worker)
        return
    out.print(cell(f"{worker['name']} {done} (state: {worker['state']})"))


@workers_app.command("drain")
def drain(
    name: WorkerArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put a worker in maintenance: its running instances stay, nothing new is placed there."""
    drained = _set_maintenance(name, "maintenance", server, api_key)
    _print_state(drained, "drained: running instances stay, nothing new is placed there", as_json)


@workers_app.command("undrain")
def undrain(
    name: WorkerArgument,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a worker out of maintenance: new instances may be placed there again."""
    undrained = _set_maintenance(name, "ready", server, api_key)
    _print_state(undrained, "undrained: new instances may be placed there again", as_json)


def _confirm_delete(worker: dict[str, Any]) -> None:
    question = f"Delete worker {worker['name']} (id {worker['id']})? Its instances will be placed elsewhere"
    confirm_delete(f"worker {worker['name']}", question)


@workers_app.command("delete")
def delete(
    name: WorkerArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Forget a worker; its instances go back to pending. Stop the worker first, or it registers again."""
    with connect(server, api_key) as client:
        worker = find_worker(client, name)
        if not yes:
            _confirm_delete(worker)
        send(client, "DELETE", f"/api/workers/{worker['id']}", expected=204)
    out.print(cell(f"deleted worker {worker['name']} (id {worker['id']})"))
