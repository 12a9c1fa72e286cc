"""``gpufleet start``: the server, the embedded worker, or both (``cli.launcher`` runs them).

Its flags are ``Settings``' fields, made into options here and nowhere else: ``--host`` for
``host``, each also read from ``GPUFLEET_HOST``, with the field's description as help. Only the
flags a person gave reach ``Settings``; it fills the rest from the environment and its defaults,
and validates everything once. A bad value exits 2 naming its flag; a failure at start exits 1
with one line (``cli.errors``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from rich.markup import escape

from gpufleet import __version__
from gpufleet.cli.client import EXIT_USAGE, err, error_line, fail, out
from gpufleet.cli.errors import explain
from gpufleet.cli.print_config import show_config
from gpufleet.common.demo_model import DEMO_QUESTION, DemoReady
from gpufleet.common.event_loop import event_loop_factory
from gpufleet.common.logging import configure_logging
from gpufleet.config import Settings
from gpufleet.config_file import ConfigFileError, read_config_file

if TYPE_CHECKING:
    from gpufleet.cli.launcher import Banner

# What a flag takes on the command line, where the field's own type is parsed by Settings.
CLI_TYPES: dict[str, type] = {"labels": str, "system_reserved": str}


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _option(name: str, info: FieldInfo) -> inspect.Parameter:
    kind: Any = CLI_TYPES.get(name, info.annotation)
    help_text = info.description or ""
    if info.default_factory is None and info.default not in (None, False):
        help_text += f" [default: {info.default}]"
    # Escaped: typer renders help as rich markup, which would swallow "[default: …]" as a tag.
    option = typer.Option(
        None, flag(name), envvar=f"GPUFLEET_{name.upper()}", help=escape(help_text), show_default=False
    )
    if kind is bool:
        option.is_flag = True
    annotation = kind if type(None) in getattr(kind, "__args__", ()) else kind | None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


# ``start``'s own options, which are not settings of the process.
START_ONLY = [
    inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
    inspect.Parameter(
        "config_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            None,
            "--config-file",
            envvar="GPUFLEET_CONFIG_FILE",
            help="A YAML file of these settings (keys as the flags, without --); flags and GPUFLEET_* "
            "variables win over it.",
            show_default=False,
        ),
        annotation=Path | None,
    ),
    inspect.Parameter(
        "print_config",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(
            False, "--print-config", help="Print the merged settings, with where each came from, and exit."
        ),
        annotation=bool,
    ),
]


def _with_settings_flags(command: Any) -> Any:
    """Give ``command`` one keyword parameter per ``Settings`` field (typer reads the signature)."""
    parameters = [_option(name, info) for name, info in Settings.model_fields.items()] + START_ONLY
    command.__signature__ = inspect.Signature(parameters)
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command


@_with_settings_flags
def start(*, context: typer.Context, config_file: Path | None = None, print_config: bool = False, **given: Any) -> None:
    """Start gpufleet: server + embedded worker (default), server only, or worker only (--server-url)."""
    file_values = config_file_settings(config_file)
    given = {name: value for name, value in given.items() if value is not None}
    settings = settings_from(given, file_values)
    if print_config:
        show_config(settings, _sources(context, given, file_values, config_file))
        return
    # The server and worker stacks take a second to import; only ``start`` needs them.
    from gpufleet.cli.launcher import run

    configure_logging(settings.log_level)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run(settings, _announce, _announce_demo))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure at start into an error line
        fail(explain(exc, err))


def config_file_settings(config_file: Path | None) -> dict[str, Any]:
    if config_file is None:
        return {}
    try:
        return read_config_file(config_file, set(Settings.model_fields))
    except ConfigFileError as exc:
        fail(str(exc), EXIT_USAGE)


def _sources(
    context: typer.Context, given: dict[str, Any], file_values: dict[str, Any], config_file: Path | None
) -> dict[str, str]:
    """Where each setting came from: the flag, its ``GPUFLEET_*`` variable, the file, or the default."""
    sources: dict[str, str] = {}
    for name in Settings.model_fields:
        if name in given:
            source = context.get_parameter_source(name)
            from_env = source is not None and source.name == "ENVIRONMENT"
            sources[name] = f"env GPUFLEET_{name.upper()}" if from_env else f"flag {flag(name)}"
        elif name in file_values:
            sources[name] = f"file {config_file}"
        else:
            sources[name] = "default"
    return sources


def settings_from(given: dict[str, Any], file_values: dict[str, Any] | None = None) -> Settings:
    try:
        return Settings.with_config_file(file_values or {})(**given)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            where = flag(field) if field else "options"
            if field in (file_values or {}) and field not in given:
                where += " (from --config-file)"
            error_line(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
        raise typer.Exit(EXIT_USAGE) from None


def _announce(banner: Banner) -> None:
    out.print(f"[bold green]gpufleet {__version__} is running[/]")
    out.print(f"  API:         {banner.url}/api   (OpenAPI: {banner.url}/docs)")
    out.print(f"  OpenAI API:  {banner.url}/v1")
    if banner.ui_problem:
        out.print(f"  Web UI:      none yet: {escape(banner.ui_problem)}")
    else:
        out.print(f"  Web UI:      {banner.url}/")
    if banner.password_file:
        out.print(f"  Login:       user [bold]admin[/], password in {banner.password_file}")
    if banner.token_file:
        join = f"GPUFLEET_TOKEN=$(cat {banner.token_file}) gpufleet start --server-url {banner.url}"
        out.print(f"  Workers join with: {join}")
    sys.stdout.flush()


def _announce_demo(event: DemoReady | str) -> None:
    """The demo model answers (``DemoReady``), or a line on why it does not yet (``str``)."""
    if isinstance(event, str):
        out.print(f"[yellow]demo:[/] {event}")
        sys.stdout.flush()
        return
    question = [{"role": "user", "content": DEMO_QUESTION}]
    body = json.dumps({"model": event.model, "messages": question, "temperature": 0})
    out.print(f"[bold green]The demo model {event.model} is answering.[/] Try it:")
    out.print(
        f'  curl {event.base_url}/chat/completions -H "Authorization: Bearer $(cat {event.api_key_file})"'
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
