"""The options that describe a deployment, declared once for ``models deploy``, ``update`` and ``preview``.

The issue asks that ``preview`` take exactly the options of ``deploy`` (and ``update`` the same,
to change only what is given). Rather than repeat two dozen parameters in three signatures, they
are the fields of ``SpecFlags``, and ``with_spec_options`` puts them in the command's signature
(where its ``spec: SpecFlags`` parameter stands), so typer shows and parses them, and hands them
back to the command as one ``SpecFlags``.

Invariant: every field defaults to None, meaning "not given"; ``model_body.spec_body`` sends only
what was given, so an update changes nothing else. The tri-state booleans (``--cpu-offloading`` /
``--no-cpu-offloading``) exist for that: an update can switch either way or leave it.

The deployment's own name is the commands' positional ``NAME``; ``--name`` is the Ollama library
model (``--source ollama --name llama3.2:1b``), as the issue writes it.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from gpufleet.schemas.models import Backend, PlacementStrategy

SOURCE = "Model source"
PLACEMENT = "Placement"
ON_DEMAND = "On demand and autoscaling"


@dataclass(frozen=True)
class SpecFlags:
    """A deployment as the command line gave it; None everywhere it was not given."""

    source: Annotated[
        str | None,
        typer.Option(help="hf | modelscope | ollama | local (default: from the options given)", rich_help_panel=SOURCE),
    ] = None
    repo: Annotated[
        str | None,
        typer.Option("--repo", "--hf-repo", help="Hugging Face or ModelScope repository", rich_help_panel=SOURCE),
    ] = None
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "--hf-file", help="File (glob) in the repository, e.g. '*Q4_K_M.gguf'", rich_help_panel=SOURCE
        ),
    ] = None
    ollama_name: Annotated[
        str | None, typer.Option("--name", help="Ollama library model, e.g. llama3.2:1b", rich_help_panel=SOURCE)
    ] = None
    path: Annotated[
        str | None,
        typer.Option("--path", "--local-path", help="GGUF file or directory on the workers", rich_help_panel=SOURCE),
    ] = None
    backend: Annotated[Backend | None, typer.Option(help="Inference engine (default: chosen)")] = None
    backend_parameter: Annotated[
        list[str] | None,
        typer.Option(help="Engine flag, e.g. '--flag value' (repeatable)", show_default=False),
    ] = None
    ctx_size: Annotated[int | None, typer.Option(help="Context size (tokens)")] = None
    description: Annotated[str | None, typer.Option(help="A note shown with the deployment")] = None
    replicas: Annotated[int | None, typer.Option(help="Replicas (the target, within the bounds if any)")] = None
    placement_strategy: Annotated[
        PlacementStrategy | None, typer.Option("--placement-strategy", "--strategy", rich_help_panel=PLACEMENT)
    ] = None
    cpu_offloading: Annotated[
        bool | None,
        typer.Option(
            "--cpu-offloading/--no-cpu-offloading", help="Allow GPU+CPU and CPU placements", rich_help_panel=PLACEMENT
        ),
    ] = None
    distributed: Annotated[
        bool | None,
        typer.Option(
            "--distributed/--no-distributed", help="Allow splitting across workers", rich_help_panel=PLACEMENT
        ),
    ] = None
    worker_selector: Annotated[
        list[str] | None,
        typer.Option(
            help="Worker labels k=v (repeatable, or k=v,k2=v2)", show_default=False, rich_help_panel=PLACEMENT
        ),
    ] = None
    gpu_selector: Annotated[
        list[str] | None,
        typer.Option(
            help="Device ids, e.g. node1:cuda:0,node1:cuda:1 (repeatable)",
            show_default=False,
            rich_help_panel=PLACEMENT,
        ),
    ] = None
    min_replicas: Annotated[
        int | None, typer.Option(help="Lower bound; 0 makes the model on demand", rich_help_panel=ON_DEMAND)
    ] = None
    max_replicas: Annotated[int | None, typer.Option(help="Upper bound", rich_help_panel=ON_DEMAND)] = None
    idle_timeout: Annotated[
        int | None, typer.Option(help="Seconds idle before an instance is unloaded", rich_help_panel=ON_DEMAND)
    ] = None
    priority: Annotated[int | None, typer.Option(help="Eviction priority (-1000..1000)", rich_help_panel=ON_DEMAND)] = (
        None
    )
    max_concurrent_requests: Annotated[
        int | None, typer.Option(help="Requests per instance at once", rich_help_panel=ON_DEMAND)
    ] = None
    max_queue: Annotated[int | None, typer.Option(help="Requests waiting before 429", rich_help_panel=ON_DEMAND)] = None
    queue_timeout: Annotated[
        int | None, typer.Option(help="Seconds a request may wait before 503", rich_help_panel=ON_DEMAND)
    ] = None


FromJsonOption = Annotated[
    Path | None,
    typer.Option("--from-json", help="The deployment as JSON (the POST /api/models body); options override it"),
]
COMMAND = typing.TypeVar("COMMAND", bound=Callable[..., None])


def with_spec_options(command: COMMAND) -> COMMAND:
    """``command`` with each ``SpecFlags`` field as an option in place of its ``spec`` parameter."""
    own = inspect.signature(command, eval_str=True)
    if "spec" not in own.parameters:
        raise TypeError(f"{command.__name__} has no `spec: SpecFlags` parameter")
    hints = typing.get_type_hints(SpecFlags, include_extras=True)
    options = [
        inspect.Parameter(
            field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=hints[field.name]
        )
        for field in fields(SpecFlags)
    ]
    parameters: list[inspect.Parameter] = []
    for parameter in own.parameters.values():
        if parameter.name == "spec":
            parameters.extend(options)
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def wrapper(**given: Any) -> None:
        spec = SpecFlags(**{field.name: given.pop(field.name) for field in fields(SpecFlags)})
        command(spec=spec, **given)

    wrapper.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return typing.cast(COMMAND, wrapper)
