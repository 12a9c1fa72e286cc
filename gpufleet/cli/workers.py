"""``gpufleet workers``: Workers: list, show, label, drain for maintenance, undrain, delete."""

from __future__ import annotations

import typer

workers_app = typer.Typer(
    help="Workers: list, show, label, drain for maintenance, undrain, delete.", no_args_is_help=True
)
