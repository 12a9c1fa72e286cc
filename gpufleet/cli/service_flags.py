"""``gpufleet service install``'s pass-through flags: exactly ``gpufleet start``'s, parsed by the
``start`` command itself and validated the way it validates them (its ``--config-file`` and
``Settings``), then turned into the command line the service runs.

Invariants of ``ServiceCommand``:

- ``argv`` is the absolute program, then ``start --data-dir <absolute data dir>``: the service uses
  the data dir the person meant, whatever its manager's environment and working directory.
- Flags and ``GPUFLEET_*`` variables both reach it (a service manager does not pass on this
  shell's environment); path values and ``--config-file`` are made absolute.
- ``SECRET_FIELDS`` never appear in ``argv``: they are in ``secrets``, keyed by their variable.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from gpufleet.cli.client import EXIT_USAGE, fail
from gpufleet.cli.start import config_file_settings, flag, settings_from, start
from gpufleet.config import Settings

# Settings that unlock something: a service reads them from its environment, never its command line.
# The database URL may carry a password.
SECRET_FIELDS = ("token", "bootstrap_password", "huggingface_token", "database_url")


@dataclass(frozen=True)
class ServiceCommand:
    argv: tuple[str, ...]
    secrets: dict[str, str]
    settings: Settings


def gpufleet_program() -> list[str]:
    """The gpufleet now running, as an absolute command: its script (``sys.argv[0]``), or
    ``python -m gpufleet`` with this interpreter (not resolved: a venv's python is a symlink)."""
    launched = sys.argv[0]
    if Path(launched).stem == "gpufleet":
        found = launched if os.sep in launched else shutil.which(launched)
        if found and os.access(found, os.X_OK):
            return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "gpufleet"]


def _start_command() -> Any:
    """``start`` as typer makes it into a command (the same options, types and variables)."""
    holder = typer.Typer()
    holder.command("start")(start)
    return typer.main.get_command(holder)


def _word(value: Any) -> str:
    return os.path.abspath(os.path.expanduser(value)) if isinstance(value, Path) else str(value)


def service_command(args: list[str]) -> ServiceCommand:
    """Parse and validate ``gpufleet start`` ``args``; bad ones exit 2 with one line, as ``start`` does."""
    try:
        parsed = _start_command().make_context("gpufleet service install", list(args)).params
    except typer.TyperException as exc:  # typer's click: an unknown flag, a value of the wrong type
        fail(exc.format_message(), EXIT_USAGE)
    if parsed.get("print_config"):
        fail("--print-config prints and exits: run it as gpufleet start --print-config", EXIT_USAGE)
    config_file: Path | None = parsed.get("config_file")
    given = {name: parsed[name] for name in Settings.model_fields if parsed.get(name) is not None}
    settings = settings_from(given, config_file_settings(config_file))
    data_dir = settings.data_dir.expanduser().absolute()
    argv = [*gpufleet_program(), "start", "--data-dir", str(data_dir)]
    if config_file is not None:
        argv += ["--config-file", _word(config_file)]
    secrets: dict[str, str] = {}
    for name, value in given.items():
        if name in SECRET_FIELDS:
            secrets[f"GPUFLEET_{name.upper()}"] = str(value)
        elif name == "data_dir" or value is False:
            continue
        elif value is True:
            argv.append(flag(name))
        else:
            argv += [flag(name), _word(value)]
    return ServiceCommand(tuple(argv), secrets, settings)
