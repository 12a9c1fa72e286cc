"""The root ``gpufleet`` command: its version flag and every command group, registered in one place."""

from __future__ import annotations

from typing import Annotated

import typer

from gpufleet import __version__
from gpufleet.cli.auth import login, logout
from gpufleet.cli.chat import chat
from gpufleet.cli.client import out
from gpufleet.cli.devices import devices_app
from gpufleet.cli.engines import engines_app, installed_engines
from gpufleet.cli.estimate import estimate
from gpufleet.cli.instances import instances_app
from gpufleet.cli.keys import keys_app
from gpufleet.cli.models import models_app
from gpufleet.cli.reset_admin import reset_admin_password
from gpufleet.cli.service import service_app
from gpufleet.cli.start import start
from gpufleet.cli.usage import usage
from gpufleet.cli.users import users_app
from gpufleet.cli.workers import workers_app

app = typer.Typer(
    name="gpufleet",
    help="GPU cluster manager for running LLMs.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion
    pretty_exceptions_enable=False,
)
app.command("start")(start)
app.command("login")(login)
app.command("logout")(logout)
app.command("estimate")(estimate)
app.add_typer(engines_app, name="engines")
app.add_typer(models_app, name="models")
app.add_typer(workers_app, name="workers")
app.add_typer(devices_app, name="devices")
app.add_typer(instances_app, name="instances")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(service_app, name="service")
app.command("usage")(usage)
app.command("reset-admin-password")(reset_admin_password)
app.command("chat")(chat)


def _version(value: bool) -> None:
    if value:
        out.print(f"gpufleet {__version__}")
        installed = installed_engines()
        for copy in installed:
            out.print(f"{copy.engine} {copy.version} (build {copy.build}, {copy.accelerator})")
        if not installed:
            out.print("no engine installed yet (gpufleet engines install llama.cpp)")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """GPU cluster manager for running LLMs behind one OpenAI-compatible endpoint."""
