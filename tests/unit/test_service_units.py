"""``cli.service_units``: the service definitions as text. An ``ExecStart=`` line splits back into
exactly the argv it was written from (systemd's ``%%`` and ``$$`` undone), whatever the data dir
holds; secrets stay out of command lines; a line break cannot sneak a second setting in."""

from __future__ import annotations

import plistlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gpufleet.cli.service_units import (
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

AWKWARD = '/srv/my data/100%/$HOME/it\'s "quoted" \\ here'


def spec(data_dir: Path, **changes: object) -> ServiceSpec:
    argv = ("/opt/gpufleet/bin/gpufleet", "start", "--data-dir", str(data_dir), "--labels", "zone=a b")
    fields: dict[str, object] = {"name": "gpufleet", "argv": argv, "data_dir": data_dir} | changes
    return ServiceSpec(**fields)  # type: ignore[arg-type]


def test_an_awkward_data_dir_round_trips_through_exec_start() -> None:
    argv = ("/opt/gpu fleet/bin/gpufleet", "start", "--data-dir", AWKWARD, "--port", "9000", "")
    line = exec_line(argv)
    assert parse_exec_line(line) == list(argv)
    # systemd's specifiers and variables escaped; plain words left bare
    assert '"/srv/my data/100%%/$$HOME/it\'s \\"quoted\\" \\\\ here"' in line
    assert line.startswith('"/opt/gpu fleet/bin/gpufleet" start --data-dir ')
    assert line.endswith(' --port 9000 ""')


def test_the_program_keeps_its_dollar_and_refuses_quotes() -> None:
    # systemd expands variables in arguments only: the program's "$" stays single, "%" is doubled
    assert exec_line(["/opt/a$b%c/gpufleet", "$x"]) == '"/opt/a$b%%c/gpufleet" "$$x"'
    assert parse_exec_line('"/opt/a$b%%c/gpufleet" "$$x"') == ["/opt/a$b%c/gpufleet", "$x"]
    for path in ('/opt/"q"/gpufleet', "/opt/it's/gpufleet", "/opt/back\\slash/gpufleet"):
        with pytest.raises(UnitError, match="quote or a backslash"):
            exec_line([path])


def test_a_line_break_cannot_reach_a_unit() -> None:
    with pytest.raises(UnitError, match="line break"):
        exec_line(["/bin/gpufleet", "start", "--worker-name", "a\nExecStartPre=/bin/evil"])
    with pytest.raises(UnitError, match="line break"):
        render_env_file({"GPUFLEET_TOKEN": "a\nb"})


def test_the_system_unit(tmp_path: Path) -> None:
    data_dir = tmp_path / "data 100%" / "$x"
    env_file = data_dir / "service.env"
    unit = render_systemd_unit(spec(data_dir, secrets={"GPUFLEET_TOKEN": "s3cret"}), env_file)
    assert "s3cret" not in unit
    # a whole-line path: systemd expands its specifiers ("%%"), not variables ("$" stays)
    assert unit_value(unit, "EnvironmentFile") == str(env_file).replace("%", "%%")
    assert env_file_path(unit_value(unit, "EnvironmentFile") or "") == env_file
    line = unit_value(unit, "ExecStart") or ""
    assert parse_exec_line(line)[2:4] == ["--data-dir", str(data_dir)]
    for setting in (
        "Restart=on-failure",
        "RestartSec=5",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "StandardOutput=journal",
        "StandardError=journal",
        "After=network-online.target",
        "Wants=network-online.target",
        "WantedBy=multi-user.target",
    ):
        assert setting in unit.splitlines()
    assert "KillMode" not in unit  # the whole group gets SIGTERM; gpufleet stops its engines itself


def test_a_user_unit_and_kept_engines(tmp_path: Path) -> None:
    unit = render_systemd_unit(spec(tmp_path, system=False, keep_engines=True), None)
    lines = unit.splitlines()
    assert "WantedBy=default.target" in lines
    assert "Wants=network-online.target" not in lines  # no such target in a user manager
    assert "KillMode=process" in lines  # engines left serving survive a restart, to be re-adopted
    assert unit_value(unit, "EnvironmentFile") is None


def test_the_environment_file_quotes_like_systemd() -> None:
    text = render_env_file({"GPUFLEET_TOKEN": 'a"b\\c$d`e f', "GPUFLEET_BOOTSTRAP_PASSWORD": "pw"})
    assert text.splitlines()[1:] == ['GPUFLEET_BOOTSTRAP_PASSWORD="pw"', 'GPUFLEET_TOKEN="a\\"b\\\\c\\$d\\`e f"']


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_an_awkward_unit(tmp_path: Path) -> None:
    """systemd itself parses the unit: the program (in a dir with a space and "%") is found and executable."""
    program = tmp_path / "bin 100%" / "gpufleet"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    service = ServiceSpec("gpufleet", (str(program), "start", "--data-dir", AWKWARD), tmp_path)
    unit_file = tmp_path / "gpufleet.service"
    unit_file.write_text(render_systemd_unit(service, tmp_path / "data 100%" / "service.env"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "gpufleet.service" not in done.stderr, done.stderr  # no warning about our unit


def test_the_launchd_plist(tmp_path: Path) -> None:
    job = plistlib.loads(render_launchd_plist(spec(tmp_path, secrets={"GPUFLEET_TOKEN": "s3cret"})))
    assert job["Label"] == "gpufleet"
    assert job["ProgramArguments"][:4] == ["/opt/gpufleet/bin/gpufleet", "start", "--data-dir", str(tmp_path)]
    assert "s3cret" not in job["ProgramArguments"]
    assert job["EnvironmentVariables"] == {"GPUFLEET_TOKEN": "s3cret"}
    assert job["KeepAlive"] == {"SuccessfulExit": False} and job["RunAtLoad"] is True
    assert job["StandardOutPath"] == job["StandardErrorPath"] == str(tmp_path / "service.log")


def test_the_windows_lines() -> None:
    data_dir = Path("/srv/my data")
    create, environment = windows_lines(spec(data_dir, secrets={"GPUFLEET_TOKEN": "s3cret"}))
    assert create == (
        'sc.exe create gpufleet binPath= "/opt/gpufleet/bin/gpufleet start --data-dir \\"/srv/my data\\"'
        ' --labels \\"zone=a b\\"" start= auto'
    )
    assert "s3cret" not in environment and "GPUFLEET_TOKEN=<gpufleet_token>" in environment
