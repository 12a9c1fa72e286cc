"""``gpufleet engines``: build and list the inference engines this machine can run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

engines_app = typer.Typer(help="Install and list inference engines (llama.cpp).", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
ENGINE_NAMES = ("llama.cpp",)


@engines_app.command("install")
def install(
    engine: Annotated[str, typer.Argument(help="Engine to install: llama.cpp")] = "llama.cpp",
    backend: Annotated[
        str | None, typer.Option(help="cpu, cuda, hip or metal [default: what this machine has]")
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Parallel compile jobs [default: CPU count]")] = None,
) -> None:
    """Build llama-server and ggml-rpc-server from the pinned llama.cpp source (cached once per machine)."""
    from gpufleet.worker.engines.backends import BackendUnavailable, BuildBackend, detect_backend
    from gpufleet.worker.engines.llama_cpp_build import BuildError, build_llama_cpp, find_build

    if engine not in ENGINE_NAMES:
        err.print(f"[bold red]error:[/] unknown engine {engine!r}: choose from {', '.join(ENGINE_NAMES)}")
        raise typer.Exit(2)
    try:
        chosen = BuildBackend(backend) if backend == "cpu" else detect_backend()
    except BackendUnavailable as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    if backend not in (None, "cpu", chosen.name):
        err.print(f"[bold red]error:[/] --backend {backend} is not available here (this machine has {chosen.name})")
        raise typer.Exit(1)
    cached = find_build(chosen.name)
    if cached is not None:
        out.print(f"llama.cpp ({chosen.name}) is already installed in {cached.bin_dir}")
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
            build = build_llama_cpp(report, backend=chosen, jobs=jobs)
        except BuildError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None
        bar.update(task, completed=100, description="done")
    out.print(f"installed llama.cpp {build.llama_cpp_commit} ({build.backend}) in {build.bin_dir}")


@engines_app.command("list")
def list_engines() -> None:
    """Show the engine builds in the cache."""
    from gpufleet.worker.engines.llama_cpp_build import engines_dir, installed_builds

    builds = installed_builds()
    if not builds:
        out.print(f"no engines installed in {engines_dir()}; run: gpufleet engines install llama.cpp")
        return
    table = Table("engine", "version", "llama.cpp", "backend", "binaries")
    table.columns[-1].overflow = "fold"
    for build in builds:
        table.add_row("llama.cpp", build.version, build.llama_cpp_commit, build.backend, build.bin_dir)
    out.print(table)
