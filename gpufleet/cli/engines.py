"""``gpufleet engines``: install and list the inference engines this machine can run (``worker.engines``).

``worker.engines`` (and the estimator under it) takes a quarter of a second to import, so it is
imported inside the commands: every other ``gpufleet`` command starts without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpufleet.cli.client import EXIT_USAGE, fail, out
from gpufleet.common.errors import GpufleetError
from gpufleet.common.paths import cache_dir

if TYPE_CHECKING:
    from gpufleet.worker.engines import Engine
    from gpufleet.worker.engines.base import InstalledEngine

engines_app = typer.Typer(help="Install and list inference engines (llama.cpp).", no_args_is_help=True)


def _engine(name: str) -> Engine:
    from gpufleet.worker.engines import ENGINES, EngineOptions

    if name not in ENGINES:
        fail(f"unknown engine {name!r}: choose from {', '.join(ENGINES)}", EXIT_USAGE)
    return ENGINES[name](EngineOptions())


@engines_app.command("install")
def install(
    engine: Annotated[str, typer.Argument(help="Engine to install, e.g. llama.cpp")] = "llama.cpp",
    backend: Annotated[
        str | None, typer.Option(help="cpu, cuda, hip or metal", show_default="what this machine has")
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Parallel compile jobs", show_default="CPU count")] = None,
) -> None:
    """Install an engine for this machine (llama.cpp: build llama-server and ggml-rpc-server, cached once)."""
    chosen = _engine(engine)
    try:
        cached = chosen.find_installed(backend)
    except GpufleetError as exc:
        fail(exc.message)
    if cached is not None:
        out.print(f"{cached.engine} ({cached.accelerator}) is already installed in {cached.location}")
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    ) as bar:
        task = bar.add_task("starting", total=100)

        def report(step: str, percent: float | None) -> None:
            bar.update(task, description=step, completed=percent if percent is not None else None)

        try:
            built = chosen.install(report, accelerator=backend, jobs=jobs)
        except GpufleetError as exc:
            fail(exc.message)
        bar.update(task, completed=100, description="done")
    out.print(f"installed {built.engine} {built.build} ({built.accelerator}) in {built.location}")


def installed_engines() -> list[InstalledEngine]:
    """Every engine build installed in the cache."""
    from gpufleet.worker.engines import ENGINES, EngineOptions

    return [copy for make in ENGINES.values() for copy in make(EngineOptions()).installed()]


@engines_app.command("list")
def list_engines() -> None:
    """Show the engines installed in the cache."""
    installed = installed_engines()
    if not installed:
        out.print(f"no engines installed in {cache_dir() / 'engines'}; run: gpufleet engines install llama.cpp")
        return
    table = Table("engine", "version", "build", "backend", "location")
    table.columns[-1].overflow = "fold"
    for copy in installed:
        table.add_row(copy.engine, copy.version, copy.build, copy.accelerator, copy.location)
    out.print(table)
