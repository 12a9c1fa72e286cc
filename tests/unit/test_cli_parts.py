"""The CLI's shared parts: ``gpufleet start``'s flags come from ``Settings`` alone, and one place
turns an exception into the error line."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from rich.markup import escape
from typer.core import TyperOption

from gpufleet.cli import app
from gpufleet.cli.errors import CommandFailed, explain
from gpufleet.cli.launcher import Banner
from gpufleet.cli.start import _announce
from gpufleet.common.net import PortUnavailable
from gpufleet.config import Settings
from gpufleet.estimate.gguf import GGUFError


def test_every_setting_is_a_start_flag_with_its_variable() -> None:
    group: Any = typer.main.get_command(app)  # typer's own click
    start = group.commands["start"]
    options = {p.name: p for p in start.params if isinstance(p, TyperOption)}
    # start's own options, which are not settings (they say where settings come from, or print them)
    assert {options.pop("config_file").opts[0], options.pop("print_config").opts[0]} == {
        "--config-file",
        "--print-config",
    }
    assert set(options) == set(Settings.model_fields)
    for name, option in options.items():
        assert option.opts == ["--" + name.replace("_", "-")]
        assert option.envvar == f"GPUFLEET_{name.upper()}"
        assert option.help and escape(Settings.model_fields[name].description or "") in option.help
        assert option.default is None  # only what a person gives reaches Settings
    assert options["disable_worker"].is_flag and options["demo"].is_flag
    assert "[default: 8080]" in (options["port"].help or "")


def test_explain_gives_the_message_of_every_typed_error() -> None:
    assert explain(GGUFError("x.gguf is not a GGUF file")) == "x.gguf is not a GGUF file"
    assert explain(PortUnavailable("port 1 is taken")) == "port 1 is taken"
    assert explain(CommandFailed("no deployment named 'a'", 2)) == "no deployment named 'a'"
    assert explain(PermissionError(13, "Permission denied")).startswith("cannot use the database or data dir: ")
    assert explain(KeyError("surprise")) == "KeyError: 'surprise'"  # a bug: named, not hidden


def test_the_banner_advertises_the_web_ui_only_when_there_is_one(capsys: pytest.CaptureFixture[str]) -> None:
    _announce(Banner(url="http://h:8080", password_file=None, token_file=None))
    assert "Web UI:      http://h:8080/" in capsys.readouterr().out
    problem = "the web UI is not built: install Node.js 20 (with npm), then run: cd ui && npm ci && npm run build"
    _announce(Banner(url="http://h:8080", password_file=None, token_file=None, ui_problem=problem))
    shown = capsys.readouterr().out
    assert "http://h:8080/\n" not in shown and f"Web UI:      none yet: {problem}" in shown.replace("\n", " ")
