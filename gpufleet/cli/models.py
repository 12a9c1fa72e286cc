"""``gpufleet models``: operator commands about deployments (preview now; more with the operator CLI issue)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    EXIT_NO,
    ApiKeyOption,
    ServerOption,
    connect,
    out,
    refused,
)
from gpufleet.cli.model_logs import logs
from gpufleet.cli.model_wait import wait
from gpufleet.common.labels import parse_labels
from gpufleet.common.units import format_bytes

models_app = typer.Typer(
    help="Deployments: preview where one would be placed; wait until one runs; read an instance's logs.",
    no_args_is_help=True,
)
models_app.command("logs")(logs)
models_app.command("wait")(wait)


def _labels(raw: str | None) -> dict[str, str]:
    try:
        return parse_labels(raw)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@models_app.command("preview")
def preview(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Deployment as JSON (the POST /api/models body)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Deployment name")] = None,
    local_path: Annotated[str | None, typer.Option(help="GGUF file or directory on the workers")] = None,
    hf_repo: Annotated[str | None, typer.Option(help="Hugging Face repository")] = None,
    hf_file: Annotated[str | None, typer.Option(help="File (glob) in the Hugging Face repository")] = None,
    replicas: Annotated[int | None, typer.Option(help="Replicas")] = None,
    strategy: Annotated[str | None, typer.Option(help="spread or binpack")] = None,
    cpu_offloading: Annotated[bool, typer.Option("--cpu-offloading", help="Allow GPU+CPU and CPU placements")] = False,
    worker_selector: Annotated[str | None, typer.Option(help="Labels: k=v,k2=v2")] = None,
    gpu_selector: Annotated[str | None, typer.Option(help="Device ids: node1:cuda:0,node1:cuda:1")] = None,
    ctx_size: Annotated[int | None, typer.Option(help="Context size")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show where a deployment's replicas would be placed now, without creating anything."""
    body: dict[str, Any] = json.loads(file.read_text()) if file else {}
    flags = {
        "name": name,
        "local_path": local_path,
        "huggingface_repo_id": hf_repo,
        "huggingface_filename": hf_file,
        "replicas": replicas,
        "placement_strategy": strategy,
        "ctx_size": ctx_size,
    }
    body.update({k: v for k, v in flags.items() if v is not None})
    if local_path and "source" not in body:
        body["source"] = "local_path"
    if hf_repo and "source" not in body:
        body["source"] = "huggingface"
    if cpu_offloading:
        body["cpu_offloading"] = True
    if worker_selector:
        body["worker_selector"] = _labels(worker_selector)
    if gpu_selector:
        body["gpu_selector"] = {"device_ids": [d.strip() for d in gpu_selector.split(",") if d.strip()]}
    body.setdefault("name", "preview")
    with connect(server, api_key, timeout=60) as client:
        response = client.post("/api/models/preview", json=body)
        if response.status_code != 200:
            raise refused("POST", "/api/models/preview", response)
    result = response.json()
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print(result)
    if not result["schedulable"]:
        raise typer.Exit(EXIT_NO)


def _print(result: dict[str, Any]) -> None:
    table = Table("replica", "mode", "worker", "devices", "VRAM", "RAM", "layers on GPU")
    for number, placement in enumerate(result["placements"], start=1):
        claim = placement["claim"]
        devices = [*placement["device_ids"], *(d for s in placement["subordinates"] for d in s["device_ids"])]
        vram = sum(claim["vram"].values()) + sum(sum(s["claim"]["vram"].values()) for s in placement["subordinates"])
        table.add_row(
            str(number),
            placement["mode"],
            placement["worker_name"],
            ", ".join(devices),
            format_bytes(vram),
            format_bytes(claim["ram"]),
            f"{claim['offload_layers']}/{claim['total_layers']}",
        )
    if result["placements"]:
        out.print(table)
    out.print(result["message"])
