"""``gpufleet models list`` and ``models show``: what is deployed and how it is doing.

The listing reads the deployments and all instances (two requests) and shows per deployment its
source, running/target replicas, bounds (``min–max``, "on demand" when ``min_replicas`` is 0),
requests queued in the gateway and a count of its instances by state. ``--json`` prints the
server's objects as they are.

``show`` prints every field, the instances, and warnings: those the server gave (only a create
or an update carries them) and those the instances tell (pending or failed with their reason, a
roll to a new spec under way). Its ``--json`` is the deployment with ``instances`` added.
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter
from typing import Annotated, Any

import typer

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    ApiKeyOption,
    Column,
    JsonOption,
    ServerOption,
    connect,
    out,
    show,
    show_one,
)
from gpufleet.cli.model_lookup import all_models, find_model, instances_of
from gpufleet.cli.model_warnings import print_warnings

# States that need a look in ``show``, and how its warning says it.
TROUBLE = {"error": "failed", "pending": "not placed", "unreachable": "unreachable"}
# The order states read in a summary: from settled to trouble.
# Fields only a create or an update fills in (None or empty in a read): not shown as fields.
ANSWER_ONLY = {"warnings", "placeable_replicas"}
STATE_ORDER = ("running", "starting", "downloading", "scheduled", "pending", "unreachable", "error", "stopping")


def source_label(model: dict[str, Any]) -> str:
    """Where the model comes from, in one short cell: ``hf org/repo *Q4_K_M.gguf``."""
    parts = {
        "huggingface": ("hf", model.get("huggingface_repo_id"), model.get("huggingface_filename")),
        "modelscope": ("modelscope", model.get("modelscope_model_id"), model.get("modelscope_file_path")),
        "ollama_library": ("ollama", model.get("ollama_library_model_name"), None),
        "local_path": ("local", model.get("local_path"), None),
    }.get(model["source"], (model["source"], None, None))
    return " ".join(str(p) for p in parts if p)


def bounds_label(model: dict[str, Any]) -> str:
    """``0–2 on demand``, ``1–3``, or empty for a fixed replica count."""
    low, high = model.get("min_replicas"), model.get("max_replicas")
    if low is None or high is None:
        return ""
    return f"{low}–{high}" + (" on demand" if low == 0 else "")


def state_summary(instances: list[dict[str, Any]]) -> str:
    """``2 running, 1 downloading``; states not in ``STATE_ORDER`` come last."""
    counts = Counter(i["state"] for i in instances)
    order = [s for s in STATE_ORDER if s in counts] + sorted(set(counts) - set(STATE_ORDER))
    return ", ".join(f"{counts[s]} {s}" for s in order) or "no instances"


def instance_warnings(model: dict[str, Any], instances: list[dict[str, Any]]) -> list[str]:
    """What needs a look: failed, pending or unreachable instances with their reason (one line per
    reason: 8 instances failing alike read as one line naming them), and a roll under way."""
    warnings = list(model.get("warnings") or [])
    alike: dict[tuple[str, str], list[str]] = {}
    for instance in instances:
        if instance["state"] in TROUBLE and instance.get("state_message"):
            alike.setdefault((instance["state"], instance["state_message"]), []).append(instance["name"])
    for (state, message), names in alike.items():
        who = f"instance {names[0]}" if len(names) == 1 else f"{len(names)} instances ({', '.join(names)})"
        warnings.append(f"{who} {TROUBLE[state]}: {message}")
    if model.get("outdated_replicas"):
        warnings.append(f"{model['outdated_replicas']} instance(s) of an earlier spec are being replaced")
    return warnings


def list_models(
    server: ServerOption = DEFAULT_SERVER, api_key: ApiKeyOption = None, as_json: JsonOption = False
) -> None:
    """List deployments: source, replicas running/target, bounds, queued requests, instance states."""
    with connect(server, api_key) as client:
        models = all_models(client)
        instances = [] if as_json else instances_of(client)
    by_model: dict[int, list[dict[str, Any]]] = {}
    for instance in instances:
        by_model.setdefault(instance["model_id"], []).append(instance)
    columns: list[Column] = [
        ("name", lambda m: m["name"]),
        ("source", source_label),
        ("replicas", lambda m: f"{m['running_replicas']}/{m['replicas']}"),
        ("bounds", bounds_label),
        ("queued", lambda m: m["queued_requests"]),
        ("state", lambda m: state_summary(by_model.get(m["id"], []))),
    ]
    show(models, columns, as_json)


def show_model(
    target: Annotated[str, typer.Argument(metavar="NAME|ID", help="Deployment name or id")],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one deployment: every field, its instances and what needs a look."""
    with connect(server, api_key) as client:
        model = find_model(client, target)
        instances = instances_of(client, model["id"])
    warnings = instance_warnings(model, instances)
    if as_json:
        out.print_json(data={**model, "instances": instances, "warnings": warnings})
        return
    show_fields: list[Column] = [(key, itemgetter(key)) for key in model if key not in ANSWER_ONLY]
    show_one(model, show_fields, as_json=False)
    instance_columns: list[Column] = [
        ("instance", lambda i: i["name"]),
        ("state", lambda i: i["state"]),
        ("worker", lambda i: i["worker_name"]),
        ("devices", lambda i: i["device_ids"]),
        ("restarts", lambda i: i["restart_count"]),
        ("message", lambda i: i["state_message"]),
    ]
    show(instances, instance_columns, as_json=False, title="instances")
    print_warnings(warnings)
