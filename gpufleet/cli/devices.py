"""``gpufleet devices``: Devices of every worker: GPUs and CPUs with their memory."""

from __future__ import annotations

import typer

devices_app = typer.Typer(help="Devices of every worker: GPUs and CPUs with their memory.", no_args_is_help=True)
