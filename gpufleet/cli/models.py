"""``gpufleet models``: deployments from the command line, wired in one place.

Reading: ``list``, ``show`` (``model_listing``). Changing: ``deploy``, ``update``, ``scale``,
``delete`` (``model_changes``), with the spec options declared once (``model_options``) and turned
into API bodies in one place (``model_body``). Looking ahead: ``preview`` (``model_preview``).
Following: ``wait`` and ``logs``.
"""

from __future__ import annotations

import typer

from gpufleet.cli.model_changes import delete, deploy, scale, update
from gpufleet.cli.model_listing import list_models, show_model
from gpufleet.cli.model_logs import logs
from gpufleet.cli.model_preview import preview
from gpufleet.cli.model_wait import wait

models_app = typer.Typer(
    help="Deployments: list, show, deploy, preview, scale, update, delete; wait until one runs; read its logs.",
    no_args_is_help=True,
)
models_app.command("list")(list_models)
models_app.command("show")(show_model)
models_app.command("deploy")(deploy)
models_app.command("preview")(preview)
models_app.command("scale")(scale)
models_app.command("update")(update)
models_app.command("delete")(delete)
models_app.command("wait")(wait)
models_app.command("logs")(logs)
