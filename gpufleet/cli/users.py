"""``gpufleet users``: Users (admins): create, list, update, delete."""

from __future__ import annotations

import typer

users_app = typer.Typer(help="Users (admins): create, list, update, delete.", no_args_is_help=True)
