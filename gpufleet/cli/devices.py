"""``gpufleet devices``: Devices of every worker: GPUs and CPUs with their memory.

``devices list`` reads ``GET /api/devices`` (admin): per device its memory *used* (live, by
anyone, as the worker last reported it) and what gpufleet has *allocated* there (the claims of the
instances placed on it); the two differ when something outside gpufleet uses the GPU, or while an
engine is still loading. ``simulated`` marks devices from a ``--device-inventory`` file.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gpufleet.cli.client import DEFAULT_SERVER, ApiKeyOption, Column, JsonOption, ServerOption, connect, get_json, show
from gpufleet.cli.lookup import find_worker
from gpufleet.common.units import format_bytes

devices_app = typer.Typer(help="Devices of every worker: GPUs and CPUs with their memory.", no_args_is_help=True)

# The columns of a device as every view of one has it (``DevicePublic``); ``workers show`` uses them too.
DEVICE_COLUMNS: list[Column] = [
    ("id", lambda d: d["id"]),
    ("worker", lambda d: d["worker_name"]),
    ("type", lambda d: d["type"]),
    ("name", lambda d: d["name"]),
    ("memory", lambda d: format_bytes(d["memory_total"])),
    ("used", lambda d: format_bytes(d["memory_used"])),
    ("simulated", lambda d: "yes" if d["simulated"] else ""),
]
# ``GET /api/devices`` adds gpufleet's own claims on each device (``DeviceDetail``).
LISTED_COLUMNS: list[Column] = [
    *DEVICE_COLUMNS[:6],
    ("allocated", lambda d: format_bytes(d["allocated"])),
    DEVICE_COLUMNS[6],
]


@devices_app.command("list")
def list_devices(
    worker: Annotated[
        str | None, typer.Option("--worker", "-w", help="Only this worker's devices (name or id)")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every GPU and CPU: memory total, used (by anyone) and allocated (by gpufleet)."""
    with connect(server, api_key) as client:
        params = {"worker_id": find_worker(client, worker)["id"]} if worker is not None else {}
        devices = get_json(client, "/api/devices", params)
    show(devices, LISTED_COLUMNS, as_json)
