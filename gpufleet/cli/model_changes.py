"""``gpufleet models deploy|update|scale|delete``: the commands that change deployments.

``deploy`` POSTs the whole spec (``--from-json``'s body overridden by the options); ``update`` and
``scale`` PATCH only what was given, so everything else keeps its value; ``delete`` asks first
unless ``--yes`` (and refuses to guess without a terminal to ask on).

The server's answer to a create or an update says how many replicas fit now
(``placeable_replicas``) and warns when fewer than asked: the summary line says the first, the
warnings are printed as yellow lines (``model_warnings``). A refusal (422: bounds, engine flags, a
path outside the allowed dirs) is the server's message on one line, exit 1.

``deploy --wait`` then follows the deployment exactly as ``models wait`` does (``model_wait``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    ApiKeyOption,
    JsonOption,
    ServerOption,
    confirm_delete,
    connect,
    err,
    get_json,
    out,
    send,
)
from gpufleet.cli.model_body import check_source_complete, spec_body, usage, whole_spec
from gpufleet.cli.model_lookup import find_model, instances_of
from gpufleet.cli.model_options import FromJsonOption, SpecFlags, with_spec_options
from gpufleet.cli.model_wait import follow
from gpufleet.cli.model_warnings import print_warnings


def outcome(verb: str, model: dict[str, Any]) -> str:
    """One line: what was done and how many replicas can run now."""
    head = f"{verb} {model['name']} (id {model['id']})"
    if model.get("min_replicas") == 0 and model["replicas"] == 0:
        return f"{head}: on demand ({model['min_replicas']}–{model['max_replicas']}), loaded by its first request"
    placeable = model.get("placeable_replicas")
    fits = "" if placeable is None else f", {placeable} can be placed now"
    return f"{head}: {model['replicas']} replica(s){fits}"


def _answer(verb: str, model: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(data=model)
    else:
        out.print(outcome(verb, model))
    print_warnings(model.get("warnings") or [])


@with_spec_options
def deploy(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Deployment name (the OpenAI `model`)", show_default=False)
    ] = None,
    spec: SpecFlags = SpecFlags(),
    from_json: FromJsonOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Then show progress until it runs, like `models wait`")] = False,
    wait_timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds", min=0)] = 3600.0,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy a model: --source hf --repo X --file GLOB | ollama --name M | local --path FILE, and placement."""
    with connect(server, api_key) as client:
        body = whole_spec(spec, name, from_json)
        if "name" not in body:
            raise usage("name the deployment: gpufleet models deploy NAME --source ...")
        created: dict[str, Any] = send(client, "POST", "/api/models", body, expected=201)
        if not (wait and as_json):
            _answer("deployed", created, as_json)
        if wait:
            # With --json, stdout holds one JSON document (the deployment once it runs): progress and
            # the closing line go to stderr, so `... --wait --json | jq` works.
            console = err if as_json else out
            console.print(follow(client, created["name"], wait_timeout, console))
            if as_json:
                _answer("deployed", get_json(client, f"/api/models/{created['id']}"), as_json)


@with_spec_options
def update(
    target: Annotated[str, typer.Argument(metavar="NAME|ID", help="Deployment name or id")],
    spec: SpecFlags = SpecFlags(),
    rename: Annotated[str | None, typer.Option(help="A new name for the deployment")] = None,
    no_bounds: Annotated[
        bool,
        typer.Option(
            "--no-bounds", help="Drop min/max replicas: a fixed replica count again, never unloaded when idle"
        ),
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a deployment: only the options given (the same as deploy's); the rest keeps its value."""
    with connect(server, api_key) as client:
        model = find_model(client, target)
        changes = spec_body(spec, model["source"]) | ({"name": rename} if rename else {})
        if no_bounds:
            if {"min_replicas", "max_replicas"} & changes.keys():
                raise usage("--no-bounds drops min/max replicas: do not give --min-replicas or --max-replicas too")
            changes |= {"min_replicas": None, "max_replicas": None}
        if not changes:
            raise usage("nothing to change: give at least one option (see `gpufleet models update --help`)")
        if changes.get("source", model["source"]) != model["source"]:
            check_source_complete(changes)
        updated: dict[str, Any] = send(client, "PATCH", f"/api/models/{model['id']}", changes)
    _answer("updated", updated, as_json)


def scale(
    target: Annotated[str, typer.Argument(metavar="NAME|ID", help="Deployment name or id")],
    replicas: Annotated[int, typer.Argument(min=0, help="Replicas wanted (within min–max when it has bounds)")],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set a deployment's replica count (the server refuses one outside its bounds)."""
    with connect(server, api_key) as client:
        model = find_model(client, target)
        scaled: dict[str, Any] = send(client, "PATCH", f"/api/models/{model['id']}", {"replicas": replicas})
    _answer("scaled", scaled, as_json)


def delete(
    target: Annotated[str, typer.Argument(metavar="NAME|ID", help="Deployment name or id")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a deployment; its instances are stopped."""
    with connect(server, api_key) as client:
        model = find_model(client, target)
        if not yes:
            count = len(instances_of(client, model["id"]))
            confirm_delete(f"model {model['name']}", f"Delete {model['name']} and stop its {count} instance(s)?")
        send(client, "DELETE", f"/api/models/{model['id']}", expected=204)
    out.print(f"deleted {model['name']}; its instances are stopping")
