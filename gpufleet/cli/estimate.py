"""``gpufleet estimate``: how much RAM and VRAM a GGUF model needs for a placement."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.cli.client import EXIT_USAGE, err, fail, out
from gpufleet.common.errors import GpufleetError
from gpufleet.common.units import format_bytes


def _split(raw: str | None) -> tuple[float, ...] | None:
    if raw is None:
        return None
    try:
        values = tuple(float(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"{raw!r} is not a comma-separated list of numbers") from None
    if not values:
        raise typer.BadParameter("give at least one share")
    return values


def estimate(
    model: Annotated[str, typer.Argument(help="GGUF path or URL; hf://OWNER/REPO/FILE, ms://…, ollama://NAME:TAG")],
    ctx_size: Annotated[
        int | None, typer.Option("--ctx-size", "-c", help="Context size", show_default="the model's, at most 8192")
    ] = None,
    gpu_layers: Annotated[
        int | None,
        typer.Option(
            "--gpu-layers", "-ngl", help="Layers to offload (blocks + output); 0 = CPU only", show_default="all"
        ),
    ] = None,
    tensor_split: Annotated[
        str | None, typer.Option("--tensor-split", "-ts", help="Share per device, RPC devices first, e.g. 3,1")
    ] = None,
    rpc: Annotated[int, typer.Option(help="How many of the devices are RPC servers")] = 0,
    parallel: Annotated[int, typer.Option("--parallel", "-np", help="Parallel sequences (slots)")] = 4,
    cache_type: Annotated[str, typer.Option("--cache-type", help="KV cache type: f16, q8_0, q4_0, …")] = "f16",
    flash_attn: Annotated[bool, typer.Option("--flash-attn/--no-flash-attn", help="Flash attention")] = True,
    ubatch: Annotated[int, typer.Option("--ubatch-size", "-ub", help="Physical batch size")] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Estimate memory per device for running MODEL with llama.cpp."""
    split = _split(tensor_split)
    try:
        devices = len(split) if split else (1 if rpc == 0 else rpc)
        if rpc > devices:
            raise ValueError(f"--rpc {rpc} is more than the {devices} device(s) of --tensor-split")
        # The estimator (gguf, numpy) takes a fifth of a second to import: only this command pays.
        from gpufleet.estimate.config import Placement, RunConfig
        from gpufleet.estimate.gguf import read_model
        from gpufleet.estimate.memory import Estimator
        from gpufleet.estimate.model_info import model_info

        placement = Placement(gpus=devices - rpc, rpc=rpc, gpu_layers=gpu_layers, tensor_split=split)
        config = RunConfig(
            ctx_size=ctx_size,
            parallel=parallel,
            cache_type_k=cache_type,
            cache_type_v=cache_type,
            flash_attn=flash_attn,
            ubatch=ubatch,
        )
        info = model_info(read_model(model))
        result = Estimator(info, config).estimate(placement)
    except GpufleetError as exc:  # the model's file: unreadable, not GGUF, unknown architecture
        fail(exc.message)
    except ValueError as exc:  # the options: a placement or run settings that cannot be
        fail(str(exc), EXIT_USAGE)
    if as_json:
        out.print_json(json.dumps(result.as_json()))
        return
    _print_table(result.as_json())


def _print_table(data: dict[str, Any]) -> None:
    for warning in data["warnings"]:
        err.print(f"[yellow]warning:[/] {warning}")
    out.print(
        f"{data['architecture']} ({data['kind']}), context {data['context_size']}, "
        f"{data['offloaded_layers']}/{data['layers']} layers offloaded"
    )
    table = Table("device", "weights", "KV cache", "compute", "overhead", "total")
    for row in data["breakdown"]:
        table.add_row(
            row["name"], *(format_bytes(row[k]) for k in ("weights", "kv_cache", "compute", "overhead", "total"))
        )
    out.print(table)
