"""``gpufleet service install|uninstall|status``: run ``gpufleet start`` under the machine's service
manager, so it starts at boot and comes back after a crash.

``install`` takes any ``gpufleet start`` flags after it (``service_flags`` checks them like
``start`` would). Linux: a systemd unit, enabled and (re)started when systemd runs and reads that
directory, else the ``systemctl`` lines are printed. macOS: a launchd plist and the ``launchctl``
line to load it. Windows: the ``sc.exe`` line, printed only. ``--platform`` renders any of the
three here (tests), ``--unit-dir`` writes elsewhere. The unit is the record: ``uninstall`` and
``status`` read it (its ``EnvironmentFile=`` is the secrets file to remove).
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from gpufleet.cli.client import EXIT_USAGE, JsonOption, fail, out
from gpufleet.cli.service_flags import service_command
from gpufleet.cli.service_units import (
    ENV_FILE_NAME,
    ServiceSpec,
    UnitError,
    env_file_path,
    exec_line,
    parse_exec_line,
    render_env_file,
    render_launchd_plist,
    render_systemd_unit,
    unit_value,
    windows_lines,
)
from gpufleet.common.paths import make_private_dir, write_secret_file

service_app = typer.Typer(help="Run gpufleet start as a service (systemd, launchd, Windows).", no_args_is_help=True)


class Platform(StrEnum):
    linux = "linux"
    macos = "macos"
    windows = "windows"


PlatformOption = Annotated[
    Platform | None, typer.Option("--platform", help="Service manager to write for", show_default="this machine's")
]
UnitDirOption = Annotated[
    Path | None,
    typer.Option(
        "--unit-dir",
        help="Where the unit (plist) goes",
        show_default="/etc/systemd/system as root, else ~/.config/systemd/user; macOS: LaunchDaemons/LaunchAgents",
    ),
]
NameOption = Annotated[str, typer.Option("--name", help="Service name")]


def _platform(chosen: Platform | None) -> Platform:
    if chosen is not None:
        return chosen
    if sys.platform.startswith("linux"):
        return Platform.linux
    if sys.platform == "darwin":
        return Platform.macos
    if sys.platform == "win32":
        return Platform.windows
    fail(f"no service manager known for {sys.platform}: choose one with --platform", EXIT_USAGE)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        fail(f"--name {name!r}: use letters, digits, '.', '_' and '-'", EXIT_USAGE)
    return name


def _systemd_dirs(system: bool) -> list[Path]:
    """Directories systemd reads units from, the default one first."""
    if system:
        return [Path(p) for p in ("/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system")]
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [config / "systemd" / "user", Path("/etc/systemd/user"), Path.home() / ".local/share/systemd/user"]


def _unit_path(platform: Platform, unit_dir: Path | None, name: str) -> Path:
    if platform is Platform.linux:
        return (unit_dir or _systemd_dirs(_is_root())[0]) / f"{name}.service"
    default = Path("/Library/LaunchDaemons") if _is_root() else Path.home() / "Library" / "LaunchAgents"
    return (unit_dir or default) / f"{name}.plist"


def _systemctl_prefix() -> list[str]:
    return ["systemctl"] if _is_root() else ["systemctl", "--user"]


def _systemd_reads(unit_path: Path) -> bool:
    return unit_path.parent.resolve() in [d.resolve() for d in _systemd_dirs(_is_root())]


def _systemd_manages(unit_path: Path) -> str | None:
    """``None`` when systemd runs here and reads ``unit_path``'s directory, else why not."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed here"
    if not Path("/run/systemd/system").is_dir():
        return "systemd is not running here"
    if not _systemd_reads(unit_path):
        return f"systemd does not read units from {unit_path.parent}"
    return None


def _systemctl(*args: str) -> str:
    command = [*_systemctl_prefix(), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 and args[0] != "is-active":  # is-active answers "inactive" with status 3
        fail(f"{shlex.join(command)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


def _write(path: Path, content: bytes, secret: bool) -> None:
    """Write atomically (a half-written unit is never read); 0600 when it holds secrets, else 0644."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(partial, path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc} (run as root, or choose --unit-dir)")


@service_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def install(
    context: typer.Context,
    platform: PlatformOption = None,
    unit_dir: UnitDirOption = None,
    name: NameOption = "gpufleet",
    no_start: Annotated[bool, typer.Option("--no-start", help="Write the unit only; print how to start it")] = False,
) -> None:
    """Install gpufleet as a service; any `gpufleet start` flags after it are what the service runs with.

    Example: gpufleet service install --port 9000 --token … (secrets go to a 0600 file, not the unit).
    """
    chosen = _platform(platform)
    command = service_command(list(context.args))
    settings = command.settings
    spec = ServiceSpec(
        name=_name(name),
        argv=command.argv,
        data_dir=settings.data_dir.expanduser().absolute(),
        secrets=command.secrets,
        system=_is_root(),
        keep_engines=settings.keep_engines,
    )
    try:
        if chosen is Platform.linux:
            _install_systemd(spec, _unit_path(chosen, unit_dir, spec.name), no_start)
        elif chosen is Platform.macos:
            _install_launchd(spec, _unit_path(chosen, unit_dir, spec.name))
        else:
            _install_windows(spec)
    except UnitError as exc:
        fail(str(exc), EXIT_USAGE)


def _install_systemd(spec: ServiceSpec, unit_path: Path, no_start: bool) -> None:
    env_file = spec.data_dir / ENV_FILE_NAME if spec.secrets else None
    unit = render_systemd_unit(spec, env_file)
    if env_file is not None:
        try:
            make_private_dir(spec.data_dir)
            write_secret_file(env_file, render_env_file(spec.secrets).rstrip("\n"))
        except OSError as exc:
            fail(f"cannot write {env_file}: {exc.strerror or exc}")
    _write(unit_path, unit.encode(), secret=False)
    out.print(f"wrote {unit_path}", markup=False)
    out.print(f"  ExecStart={exec_line(spec.argv)}", markup=False)
    if env_file is not None:
        out.print(f"  secrets ({', '.join(sorted(spec.secrets))}) in {env_file} (0600)", markup=False)
    why_not = "--no-start" if no_start else _systemd_manages(unit_path)
    target = spec.name if _systemd_reads(unit_path) else str(unit_path)  # enable links a unit from elsewhere
    steps = [["daemon-reload"], ["enable", target], ["restart", spec.name]]
    if why_not is None:
        for step in steps:
            _systemctl(*step)
        out.print(f"started and enabled at boot: {spec.name}", markup=False)
    else:
        out.print(f"not started ({why_not}); to start it and enable it at boot:", markup=False)
        for step in steps:
            out.print("  " + shlex.join([*_systemctl_prefix(), *step]), markup=False)
    journal = "journalctl" if spec.system else "journalctl --user"
    out.print(f"  logs: {journal} -u {spec.name} -f", markup=False)
    if not spec.system:
        out.print("  a user service stops when you log out unless: loginctl enable-linger", markup=False)


def _install_launchd(spec: ServiceSpec, plist_path: Path) -> None:
    try:
        make_private_dir(spec.data_dir)  # its log file goes there
    except OSError as exc:
        fail(f"cannot create {spec.data_dir}: {exc.strerror or exc}")
    _write(plist_path, render_launchd_plist(spec), secret=bool(spec.secrets))
    out.print(f"wrote {plist_path}", markup=False)
    out.print(f"  logs: {spec.data_dir / 'service.log'}", markup=False)
    out.print("to start it and at every login/boot:", markup=False)
    out.print("  " + shlex.join(["launchctl", "load", "-w", str(plist_path)]), markup=False)


def _install_windows(spec: ServiceSpec) -> None:
    out.print("run in an administrator prompt:", markup=False)
    for line in windows_lines(spec):
        out.print("  " + line, markup=False)
    if spec.secrets:
        out.print(f"  (put your real {', '.join(sorted(spec.secrets))} in place of the <…> values)", markup=False)
    out.print(
        "gpufleet does not answer the Windows service manager itself: if sc.exe start reports error 1053,"
        " run the same command under a service wrapper (WinSW, NSSM).",
        markup=False,
    )


@service_app.command()
def uninstall(platform: PlatformOption = None, unit_dir: UnitDirOption = None, name: NameOption = "gpufleet") -> None:
    """Stop and remove the service (its unit and secrets file); nothing to do when none is installed."""
    chosen = _platform(platform)
    if chosen is Platform.windows:
        out.print("run in an administrator prompt:", markup=False)
        out.print(f"  sc.exe stop {_name(name)}\n  sc.exe delete {name}", markup=False)
        return
    path = _unit_path(chosen, unit_dir, _name(name))
    if not path.is_file():
        out.print(f"no {name} service installed at {path}: nothing to remove", markup=False)
        return
    if chosen is Platform.macos:
        _remove(path)
        out.print(f"removed {path}; to stop a running one: launchctl remove {name}", markup=False)
        return
    env_value = unit_value(path.read_text(), "EnvironmentFile")
    manages = _systemd_manages(path) is None
    if manages:
        _systemctl("disable", "--now", name)
    _remove(path)
    out.print(f"removed {path}" + ("" if manages else " (it was not running under systemd here)"), markup=False)
    env_file = env_file_path(env_value) if env_value else None
    if env_file is not None and env_file.name == ENV_FILE_NAME and env_file.exists():
        _remove(env_file)
        out.print(f"removed {env_file}", markup=False)
    if manages:
        _systemctl("daemon-reload")


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        fail(f"cannot remove {path}: {exc.strerror or exc}")


@service_app.command()
def status(
    platform: PlatformOption = None,
    unit_dir: UnitDirOption = None,
    name: NameOption = "gpufleet",
    as_json: JsonOption = False,
) -> None:
    """Whether the service is installed, what it runs, and (under systemd) whether it is active."""
    chosen = _platform(platform)
    report: dict[str, Any] = {"platform": chosen.value, "name": _name(name), "installed": None, "path": None}
    report |= {"exec_start": None, "argv": None, "environment_file": None, "active": None}
    if chosen is Platform.windows:
        _show(report, as_json, f"ask Windows: sc.exe query {name}")
        return
    path = _unit_path(chosen, unit_dir, name)
    report |= {"installed": path.is_file(), "path": str(path)}
    if not path.is_file():
        _show(report, as_json, f"no {name} service installed at {path}")
        return
    if chosen is Platform.macos:
        try:
            argv = plistlib.loads(path.read_bytes()).get("ProgramArguments") or []
        except plistlib.InvalidFileException as exc:
            fail(f"{path} is not a plist: {exc}")
        report |= {"argv": [str(word) for word in argv], "exec_start": shlex.join(str(word) for word in argv)}
    else:
        text = path.read_text()
        line = unit_value(text, "ExecStart")
        env_value = unit_value(text, "EnvironmentFile")
        report |= {"exec_start": line, "argv": parse_exec_line(line) if line else None}
        report["environment_file"] = str(env_file_path(env_value)) if env_value else None
        if _systemd_manages(path) is None:
            report["active"] = _systemctl("is-active", name)
    _show(report, as_json, f"{name} installed at {path}")


def _show(report: dict[str, Any], as_json: bool, headline: str) -> None:
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(headline, markup=False)
    for key in ("exec_start", "environment_file", "active"):
        if report[key] is not None:
            out.print(f"  {key.replace('_', ' ')}: {report[key]}", markup=False)
