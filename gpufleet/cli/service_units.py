"""What ``gpufleet service install`` writes, as text: a systemd unit and its environment file, a
launchd plist, the Windows ``sc.exe`` line. Pure (no files, no processes), so every platform's
rendering is tested on any machine; ``cli.service`` writes and runs.

Invariants:

- ``exec_line(argv)`` is one line that systemd splits back into exactly ``argv``, and so does
  ``parse_exec_line`` (``shlex`` plus systemd's two escapes): a word is double-quoted unless it is
  made of ``SAFE`` characters only, ``\\`` and ``"`` are backslash-escaped inside the quotes (both
  systemd and ``shlex`` undo that), ``%`` is doubled (systemd's specifiers) and, in arguments,
  ``$`` is doubled (systemd's variable expansion, which leaves the program's path alone).
- Secrets never reach a command line: a unit names an ``EnvironmentFile=`` (written 0600 by the
  caller), a plist carries them in ``EnvironmentVariables`` (the caller writes it 0600), the
  Windows lines name the variables with placeholders.
- A value with a line break or a NUL cannot be written on a unit line: ``UnitError`` (the caller
  turns it into a usage error).
"""

from __future__ import annotations

import plistlib
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Characters a systemd word may hold unquoted (and a shell word too: the line reads the same in both).
SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
ENV_FILE_NAME = "service.env"  # in the data dir, next to the token and the database it unlocks
LOG_FILE_NAME = "service.log"  # launchd's stdout and stderr, in the data dir (systemd has the journal)
HEADER = "# Written by `gpufleet service install`; `gpufleet service uninstall` removes it."


class UnitError(ValueError):
    """A value that cannot be written into a unit (a line break, a NUL)."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service: what it runs and where its data lives.

    ``argv`` is the whole command (program first), without secrets; ``secrets`` maps
    ``GPUFLEET_*`` variables to values; ``system`` is a system-wide service (root), else the user's.
    """

    name: str
    argv: tuple[str, ...]
    data_dir: Path
    secrets: dict[str, str] = field(default_factory=dict)
    system: bool = True
    keep_engines: bool = False


def _plain(value: str, what: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise UnitError(f"{what} {value!r} has a line break or a NUL, which a service definition cannot hold")
    return value


def _specifiers(value: str, variables: bool = True) -> str:
    escaped = value.replace("%", "%%")
    return escaped.replace("$", "$$") if variables else escaped


def systemd_quote(word: str, program: bool = False) -> str:
    """One ``ExecStart=`` word (see the module's invariants). The program (the first word) is not
    variable-expanded by systemd, so its ``$`` stays single, and systemd refuses a program path
    with a quote or a backslash in it."""
    _plain(word, "argument")
    if program and any(c in word for c in ("\\", '"', "'")):
        raise UnitError(f"systemd cannot run a program whose path has a quote or a backslash: {word}")
    if SAFE.fullmatch(word):
        return _specifiers(word, not program)
    return '"' + _specifiers(word.replace("\\", "\\\\").replace('"', '\\"'), not program) + '"'


def exec_line(argv: tuple[str, ...] | list[str]) -> str:
    return " ".join(systemd_quote(word, program=index == 0) for index, word in enumerate(argv))


def parse_exec_line(line: str) -> list[str]:
    """The argv systemd runs for ``ExecStart=<line>`` as ``exec_line`` writes it."""
    words = [word.replace("%%", "%") for word in shlex.split(line)]
    return words[:1] + [word.replace("$$", "$") for word in words[1:]]


def unit_value(text: str, key: str) -> str | None:
    """The first ``key=value`` of a unit file, as written (escapes kept)."""
    for raw in text.splitlines():
        name, sep, value = raw.strip().partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None


def env_file_path(value: str) -> Path:
    """The path an ``EnvironmentFile=`` value names (an optional leading ``-`` means "may be missing")."""
    return Path(value.removeprefix("-").replace("%%", "%"))


def render_systemd_unit(spec: ServiceSpec, env_file: Path | None) -> str:
    """The unit: restarted on failure, logging to the journal, stopped with SIGTERM within 30 s.

    With ``--keep-engines`` only the main process is signalled (``KillMode=process``): the engines
    it leaves serving survive a stop or restart, and the next start re-adopts them. Otherwise the
    whole group gets SIGTERM, which gpufleet answers by stopping its engines itself.
    """
    unit = [
        HEADER,
        "[Unit]",
        f"Description=gpufleet {spec.name}: GPU cluster manager for LLMs",
        "After=network-online.target",
    ]
    if spec.system:  # a user manager has no network-online.target to pull in
        unit.append("Wants=network-online.target")
    unit += ["", "[Service]", "Type=simple", f"ExecStart={exec_line(spec.argv)}"]
    if env_file is not None:
        # a whole-line path: no quoting, specifiers expanded, variables not
        unit.append(f"EnvironmentFile={_specifiers(_plain(str(env_file), 'environment file'), variables=False)}")
    unit += [
        "Restart=on-failure",
        "RestartSec=5",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "StandardOutput=journal",
        "StandardError=journal",
    ]
    if spec.keep_engines:
        unit.append("KillMode=process")
    target = "multi-user.target" if spec.system else "default.target"
    unit += ["", "[Install]", f"WantedBy={target}", ""]
    return "\n".join(unit)


def _env_quote(value: str) -> str:
    """A double-quoted value of systemd's environment file format (``\\``, ``"``, `` ` ``, ``$`` escaped)."""
    return '"' + re.sub(r'([\\"`$])', r"\\\1", _plain(value, "secret")) + '"'


def render_env_file(secrets: dict[str, str]) -> str:
    lines = ["# gpufleet service secrets, read by its unit's EnvironmentFile=; keep it 0600."]
    lines += [f"{name}={_env_quote(value)}" for name, value in sorted(secrets.items())]
    return "\n".join(lines) + "\n"


def render_launchd_plist(spec: ServiceSpec) -> bytes:
    """A launchd job: started at load, restarted when it exits with a failure (5 s apart), its
    output in ``<data-dir>/service.log``; the secrets in its environment (the file is 0600)."""
    log = str(spec.data_dir / LOG_FILE_NAME)
    job: dict[str, object] = {
        "Label": spec.name,
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "ExitTimeOut": 30,
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    if spec.secrets:
        job["EnvironmentVariables"] = dict(sorted(spec.secrets.items()))
    return plistlib.dumps(job, sort_keys=False)


def windows_lines(spec: ServiceSpec) -> list[str]:
    """``sc.exe create`` for the command (Windows command-line quoting inside ``binPath= "…"``),
    then the service's environment for its secrets, with placeholders instead of the values."""
    command = subprocess.list2cmdline(list(spec.argv)).replace('"', '\\"')
    lines = [f'sc.exe create {spec.name} binPath= "{command}" start= auto']
    if spec.secrets:
        values = "\\0".join(f"{name}=<{name.lower()}>" for name in sorted(spec.secrets))
        key = f"HKLM\\SYSTEM\\CurrentControlSet\\Services\\{spec.name}"
        lines.append(f'reg add {key} /v Environment /t REG_MULTI_SZ /d "{values}"')
    return lines
