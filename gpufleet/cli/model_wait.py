"""``gpufleet models wait NAME``: a progress bar per instance until the deployment serves.

It polls the management API (the deployment by name, then its instances twice a second) and
draws one bar per instance: the download while the worker fetches the model file
(``download_progress``), full once the file is there, with the instance's state beside it.
Exit codes: 0 once as many instances as ``replicas`` are ``running``; 1 as soon as an instance
is in ``error`` (its ``state_message`` says why), on ``--timeout``, or when the server refuses;
2 for a missing API key or an unknown deployment.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from gpufleet.cli.client import DEFAULT_SERVER, EXIT_USAGE, ApiKeyOption, ServerOption, connect, get_json, out
from gpufleet.cli.errors import CommandFailed

PAST_DOWNLOAD = {"starting", "running", "unreachable"}  # the file is there: a full bar


def wait(
    name: Annotated[str, typer.Argument(help="Deployment name")],
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds", min=0)] = 3600.0,
) -> None:
    """Show each instance's state and download progress until all run (exit 0) or one fails (exit 1)."""
    with connect(server, api_key) as client:
        message = follow(client, name, timeout)
    out.print(message)


def follow(client: httpx.Client, name: str, timeout: float, console: Console = out) -> str:
    """Draw the bars on ``console`` until every replica runs; the closing line, or ``CommandFailed``."""
    deadline = time.monotonic() + timeout
    bars: dict[int, TaskID] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[state]}"),
    )
    with Progress(*columns, console=console) as progress:
        while True:
            model = _model(client, name)
            instances: list[dict[str, Any]] = get_json(client, "/api/model-instances", {"model_id": model["id"]})
            for instance in instances:
                if instance["id"] not in bars:
                    bars[instance["id"]] = progress.add_task(instance["name"], total=100, state="")
                done = 100.0 if instance["state"] in PAST_DOWNLOAD else instance["download_progress"] or 0.0
                progress.update(bars[instance["id"]], completed=done, state=instance["state"])
            failed = [i for i in instances if i["state"] == "error"]
            if failed:
                raise CommandFailed(f"instance {failed[0]['name']} failed: {failed[0]['state_message']}")
            running = sum(i["state"] == "running" for i in instances)
            if running >= model["replicas"]:
                return f"{name}: {running}/{model['replicas']} instance(s) running"
            if time.monotonic() >= deadline:
                states = ", ".join(f"{i['name']} {i['state']}" for i in instances) or "no instances"
                raise CommandFailed(f"{name} is not running after {timeout:.0f}s: {states}")
            time.sleep(0.5)


def _model(client: httpx.Client, name: str) -> dict[str, Any]:
    models: list[dict[str, Any]] = get_json(client, "/api/models")
    for model in models:
        if model["name"] == name:
            return model
    raise CommandFailed(f"no deployment named {name!r}", EXIT_USAGE)
