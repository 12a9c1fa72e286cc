"""``gpufleet instances``: Model instances: list, show, logs, restart."""

from __future__ import annotations

import typer

instances_app = typer.Typer(help="Model instances: list, show, logs, restart.", no_args_is_help=True)
