"""``gpufleet keys``: API keys: create (printed once), list, update, delete."""

from __future__ import annotations

import typer

keys_app = typer.Typer(help="API keys: create (printed once), list, update, delete.", no_args_is_help=True)
