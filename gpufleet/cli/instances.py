"""``gpufleet instances``: model instances (the running copies of deployments): list, show, logs, restart.

An instance is named by its name or its id; a name or id that matches none is bad usage (exit 2),
and the line names some that exist. ``logs`` streams through the server exactly like ``models
logs`` (``model_logs.stream_log``). ``restart`` asks the server to send a placed instance back to
``pending``: its worker stops the engine and the scheduler places it again.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    ApiKeyOption,
    Column,
    JsonOption,
    ServerOption,
    connect,
    get_json,
    out,
    send,
    show,
    show_one,
)
from gpufleet.cli.lookup import pick
from gpufleet.cli.model_logs import FollowOption, TailOption, log_timeout, stream_log
from gpufleet.cli.model_lookup import find_model
from gpufleet.common.units import format_bytes
from gpufleet.schemas.logs import LOG_TAIL_DEFAULT

instances_app = typer.Typer(help="Model instances: list, show, logs, restart.", no_args_is_help=True)

MESSAGE_WIDTH = 60  # characters of the state message in the listing; `show` has all of it

InstanceArgument = Annotated[str, typer.Argument(help="Instance name or id")]


def age(created_at: str, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: ``45s``, ``12m``, ``3h``, ``2d``."""
    created = datetime.fromisoformat(created_at)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - created).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short(message: str | None, width: int = MESSAGE_WIDTH) -> str:
    """The first line of ``message``, cut to ``width`` characters (ending in … when cut)."""
    line = (message or "").splitlines()[0] if message else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def claim_text(claim: dict[str, Any] | None) -> str:
    """A resource claim in human units: ``RAM 1.0 GiB; VRAM w:cuda:0 2.0 GiB; layers 33/33``."""
    if not claim:
        return ""
    parts = [f"RAM {format_bytes(int(claim.get('ram') or 0))}"]
    vram = claim.get("vram") or {}
    if vram:
        parts.append("VRAM " + ", ".join(f"{device} {format_bytes(int(size))}" for device, size in vram.items()))
    if claim.get("total_layers") is not None:
        parts.append(f"layers on GPU {claim.get('offload_layers')}/{claim['total_layers']}")
    if claim.get("tensor_split"):
        parts.append("tensor split " + ", ".join(f"{share:g}" for share in claim["tensor_split"]))
    return "; ".join(parts)


def subordinates_text(subordinates: list[dict[str, Any]]) -> str:
    """Each RPC part: ``worker (devices) at host:port, claim`` or why it is not ready."""
    parts = []
    for s in subordinates:
        where = f"at {s['rpc_host']}:{s['rpc_port']}" if s.get("rpc_port") else "no RPC server yet"
        status = f" ({s['message']})" if s.get("message") else ""
        parts.append(f"{s['worker_name']} [{', '.join(s['device_ids'])}] {where}{status}: {claim_text(s.get('claim'))}")
    return " | ".join(parts)


def _devices(instance: dict[str, Any]) -> list[str]:
    return [*instance["device_ids"], *(d for s in instance["subordinates"] for d in s["device_ids"])]


LIST_COLUMNS: list[Column] = [
    ("name", lambda i: i["name"]),
    ("model", lambda i: i["model_name"]),
    ("state", lambda i: i["state"]),
    ("worker", lambda i: i["worker_name"]),
    ("devices", _devices),
    ("port", lambda i: i["port"]),
    ("restarts", lambda i: i["restart_count"]),
    ("age", lambda i: age(i["created_at"])),
    ("message", lambda i: short(i["state_message"])),
]

SHOW_FIELDS: list[Column] = [
    ("id", lambda i: i["id"]),
    ("name", lambda i: i["name"]),
    ("model", lambda i: f"{i['model_name']} (id {i['model_id']})" if i["model_id"] is not None else i["model_name"]),
    ("state", lambda i: i["state"]),
    ("message", lambda i: i["state_message"]),
    ("worker", lambda i: i["worker_name"]),
    ("devices", lambda i: i["device_ids"]),
    ("port", lambda i: i["port"]),
    ("pid", lambda i: i["pid"]),
    ("claim", lambda i: claim_text(i["claim"])),
    ("rpc parts", lambda i: subordinates_text(i["subordinates"])),
    ("restarts", lambda i: i["restart_count"]),
    ("download", lambda i: None if i["download_progress"] is None else f"{i['download_progress']:.1f}%"),
    ("engine command", lambda i: shlex.join(i["engine_command"]) if i.get("engine_command") else None),
    ("version", lambda i: i["version"]),
    ("spec hash", lambda i: i.get("spec_hash")),
    ("created", lambda i: f"{i['created_at']} ({age(i['created_at'])} ago)"),
    ("updated", lambda i: i["updated_at"]),
]


def find_instance(client: httpx.Client, target: str) -> dict[str, Any]:
    """The instance named ``target`` (its name or id); bad usage (exit 2) naming some that exist if none."""
    return pick(get_json(client, "/api/model-instances"), target, "instance")


@instances_app.command("list")
def list_instances(
    model: Annotated[str | None, typer.Option("--model", help="Only this deployment's instances (name or id)")] = None,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Every instance: where it runs, its state and why."""
    with connect(server, api_key) as client:
        params = {"model_id": int(find_model(client, model)["id"])} if model is not None else None
        instances: list[dict[str, Any]] = get_json(client, "/api/model-instances", params)
    show(instances, LIST_COLUMNS, as_json)


@instances_app.command("show")
def show_instance(
    target: InstanceArgument,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Everything about one instance, its resource claim in GiB."""
    with connect(server, api_key) as client:
        instance = find_instance(client, target)
    show_one(instance, SHOW_FIELDS, as_json)


@instances_app.command("logs")
def instance_logs(
    target: InstanceArgument,
    tail: TailOption = LOG_TAIL_DEFAULT,
    follow: FollowOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Print an instance's engine log (llama-server's output); --follow keeps it coming."""
    with connect(server, api_key, log_timeout(follow)) as client:
        stream_log(client, int(find_instance(client, target)["id"]), tail, follow)


@instances_app.command("restart")
def restart(
    target: InstanceArgument,
    as_json: JsonOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Stop an instance's engine and have it placed again (admins)."""
    with connect(server, api_key) as client:
        instance = find_instance(client, target)
        restarted: dict[str, Any] = send(client, "POST", f"/api/model-instances/{instance['id']}/restart")
    if as_json:
        out.print_json(data=restarted)
        return
    where = f" on {instance['worker_name']}" if instance["worker_name"] else ""
    out.print(escape(f"restarted {restarted['name']}: its engine{where} stops and the scheduler places it again"))
