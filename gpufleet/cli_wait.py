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

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

PAST_DOWNLOAD = {"starting", "running", "unreachable"}  # the file is there: a full bar


class _Failed(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def wait(
    name: Annotated[str, typer.Argument(help="Deployment name")],
    server: Annotated[str, typer.Option(envvar="GPUFLEET_SERVER", help="Server URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str | None, typer.Option(envvar="GPUFLEET_API_KEY", help="An admin's API key")] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds", min=0)] = 3600.0,
) -> None:
    """Show each instance's state and download progress until all run (exit 0) or one fails (exit 1)."""
    if not api_key:
        err.print("[bold red]error:[/] an admin API key is needed: --api-key or GPUFLEET_API_KEY")
        raise typer.Exit(2)
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=30) as client:
            message = _follow(client, name, timeout)
    except _Failed as failure:
        err.print(f"[bold red]error:[/] {failure}")
        raise typer.Exit(failure.code) from None
    except httpx.HTTPError as exc:
        err.print(f"[bold red]error:[/] cannot reach {server}: {exc}")
        raise typer.Exit(1) from None
    out.print(message)


def _follow(client: httpx.Client, name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    bars: dict[int, TaskID] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[state]}"),
    )
    with Progress(*columns, console=out) as progress:
        while True:
            model = _model(client, name)
            instances: list[dict[str, Any]] = _get(client, "/api/model-instances", {"model_id": model["id"]})
            for instance in instances:
                if instance["id"] not in bars:
                    bars[instance["id"]] = progress.add_task(instance["name"], total=100, state="")
                done = 100.0 if instance["state"] in PAST_DOWNLOAD else instance["download_progress"] or 0.0
                progress.update(bars[instance["id"]], completed=done, state=instance["state"])
            failed = [i for i in instances if i["state"] == "error"]
            if failed:
                raise _Failed(f"instance {failed[0]['name']} failed: {failed[0]['state_message']}")
            running = sum(i["state"] == "running" for i in instances)
            if running >= model["replicas"]:
                return f"{name}: {running}/{model['replicas']} instance(s) running"
            if time.monotonic() >= deadline:
                states = ", ".join(f"{i['name']} {i['state']}" for i in instances) or "no instances"
                raise _Failed(f"{name} is not running after {timeout:.0f}s: {states}")
            time.sleep(0.5)


def _model(client: httpx.Client, name: str) -> dict[str, Any]:
    models: list[dict[str, Any]] = _get(client, "/api/models", {})
    for model in models:
        if model["name"] == name:
            return model
    raise _Failed(f"no deployment named {name!r}", 2)


def _get(client: httpx.Client, path: str, params: dict[str, Any]) -> Any:
    response = client.get(path, params=params)
    if response.status_code != 200:
        detail = response.text
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            detail = str(body.get("detail", body)) if isinstance(body, dict) else str(body)
        raise _Failed(f"GET {path}: HTTP {response.status_code}: {detail}")
    return response.json()
