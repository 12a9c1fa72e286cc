"""``gpufleet models preview``: where a deployment's replicas would be placed now; nothing is created.

It takes exactly ``deploy``'s source and placement options (``model_options``), so a preview that
looks right becomes a deploy by changing one word. Exit 0 when every replica fits, 3 when the
server answered that they do not (``EXIT_NO``), 1 on a refusal, 2 on bad usage.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.cli.client import DEFAULT_SERVER, EXIT_NO, ApiKeyOption, JsonOption, ServerOption, connect, out, send
from gpufleet.cli.model_body import whole_spec
from gpufleet.cli.model_options import FromJsonOption, SpecFlags, with_spec_options
from gpufleet.common.units import format_bytes


@with_spec_options
def preview(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Deployment name (default: preview)", show_default=False)
    ] = None,
    spec: SpecFlags = SpecFlags(),
    from_json: FromJsonOption = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show where a deployment's replicas would be placed now, without creating anything."""
    with connect(server, api_key, timeout=60) as client:
        body = {"name": "preview"} | whole_spec(spec, name, from_json)
        result: dict[str, Any] = send(client, "POST", "/api/models/preview", body)
    if as_json:
        out.print_json(data=result)
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
