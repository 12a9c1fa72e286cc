"""``gpufleet service install|uninstall|status`` through the real CLI, in temporary directories
(``--unit-dir``, ``--no-start``: nothing here touches the machine's service manager).

What a service would run is checked for real: the unit's ``ExecStart`` program exists, is
executable and answers ``--version``; ``systemd-analyze verify`` (when installed) parses the unit.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gpufleet.cli.service_units import env_file_path, parse_exec_line, unit_value
from tests.support.processes import run_cli

pytestmark = pytest.mark.e2e

TOKEN = "tok-3f9a-secret"
PASSWORD = "pw-81c2-secret"


def install(units: Path, data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["service", "install", "--platform", "linux", "--unit-dir", str(units), "--no-start",
                    "--data-dir", str(data_dir), *flags])  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_writes_a_unit_that_runs_gpufleet(tmp_path: Path) -> None:
    units, data_dir = tmp_path / "units", tmp_path / "data dir"
    done = install(units, data_dir, "--port", "9999", "--token", TOKEN, "--bootstrap-password", PASSWORD)
    assert done.returncode == 0, done.stderr
    assert "not started (--no-start)" in done.stdout
    unit_file = units / "gpufleet.service"
    unit = unit_file.read_text()

    argv = parse_exec_line(unit_value(unit, "ExecStart") or "")
    start = argv.index("start")
    assert argv[start:] == ["start", "--data-dir", str(data_dir), "--port", "9999"]
    program = argv[:start]  # run_cli runs ``python -m gpufleet``: the unit runs the same
    assert Path(program[0]).is_absolute() and os.access(program[0], os.X_OK)
    version = subprocess.run([*program, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("gpufleet "), version.stderr

    lines = unit.splitlines()
    for setting in ("Restart=on-failure", "StandardOutput=journal", "StandardError=journal", "KillSignal=SIGTERM"):
        assert setting in lines
    assert TOKEN not in unit and PASSWORD not in unit and TOKEN not in done.stdout

    env_file = data_dir / "service.env"
    assert unit_value(unit, "EnvironmentFile") == str(env_file)
    assert mode(env_file) == 0o600 and mode(data_dir) == 0o700
    assert f'GPUFLEET_TOKEN="{TOKEN}"' in env_file.read_text().splitlines()
    assert f'GPUFLEET_BOOTSTRAP_PASSWORD="{PASSWORD}"' in env_file.read_text().splitlines()


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here (the rest of this module still runs)")
    awkward = tmp_path / "data 100%" / "$x"  # a space, a systemd specifier, a systemd variable
    done = install(tmp_path / "units", awkward, "--token", TOKEN, "--llama-server-path", str(awkward / "llama-server"))
    assert done.returncode == 0, done.stderr
    unit_file = tmp_path / "units" / "gpufleet.service"
    argv = parse_exec_line(unit_value(unit_file.read_text(), "ExecStart") or "")
    assert argv[argv.index("start") :] == [
        "start", "--data-dir", str(awkward), "--llama-server-path", str(awkward / "llama-server")
    ]  # fmt: skip
    assert env_file_path(unit_value(unit_file.read_text(), "EnvironmentFile") or "") == awkward / "service.env"
    verify = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert "gpufleet.service" not in verify.stderr, verify.stderr


def test_the_gpufleet_script_is_the_program_when_it_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "gpufleet"
    if not script.is_file():
        pytest.skip(f"no gpufleet script next to {sys.executable}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
    done = subprocess.run(
        [str(script), "service", "install", "--platform", "linux", "--unit-dir", str(tmp_path), "--no-start",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv = parse_exec_line(unit_value((tmp_path / "gpufleet.service").read_text(), "ExecStart") or "")
    assert argv[:2] == [str(script), "start"]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--port", "abc"], "--port"),
        (["--no-such-flag"], "No such option: --no-such-flag"),
        (["--server-url", "http://10.0.0.1:8080"], "--token"),
        (["--print-config"], "gpufleet start --print-config"),
    ],
)
def test_bad_start_flags_exit_2_and_write_nothing(tmp_path: Path, flags: list[str], says: str) -> None:
    done = install(tmp_path / "units", tmp_path / "data", *flags)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and says in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "units").exists() and not (tmp_path / "data").exists()


def test_status_and_uninstall(tmp_path: Path) -> None:
    units, data_dir = tmp_path / "units", tmp_path / "data"
    where = ["--platform", "linux", "--unit-dir", str(units)]
    assert install(units, data_dir, "--token", TOKEN).returncode == 0

    status = run_cli(["service", "status", *where, "--json"])
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["installed"] is True and report["path"] == str(units / "gpufleet.service")
    assert report["argv"][report["argv"].index("start") :] == ["start", "--data-dir", str(data_dir)]
    assert report["environment_file"] == str(data_dir / "service.env")

    removed = run_cli(["service", "uninstall", *where])
    assert removed.returncode == 0, removed.stderr
    assert not (units / "gpufleet.service").exists() and not (data_dir / "service.env").exists()
    again = run_cli(["service", "uninstall", *where])
    assert again.returncode == 0 and "nothing to remove" in again.stdout
    report = json.loads(run_cli(["service", "status", *where, "--json"]).stdout)
    assert report["installed"] is False and report["exec_start"] is None


def test_macos_plist(tmp_path: Path) -> None:
    agents, data_dir = tmp_path / "LaunchAgents", tmp_path / "data"
    done = run_cli(["service", "install", "--platform", "macos", "--unit-dir", str(agents), "--data-dir",
                    str(data_dir), "--token", TOKEN, "--worker-port", "9998"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    plist = agents / "gpufleet.plist"
    assert f"launchctl load -w {plist}" in done.stdout
    job = plistlib.loads(plist.read_bytes())
    arguments = job["ProgramArguments"]
    assert arguments[arguments.index("start") :] == ["start", "--data-dir", str(data_dir), "--worker-port", "9998"]
    assert job["KeepAlive"] == {"SuccessfulExit": False}
    assert job["StandardErrorPath"] == str(data_dir / "service.log")
    assert job["EnvironmentVariables"] == {"GPUFLEET_TOKEN": TOKEN} and mode(plist) == 0o600


def test_windows_line(tmp_path: Path) -> None:
    done = run_cli(["service", "install", "--platform", "windows", "--data-dir", str(tmp_path / "d"), "--token", TOKEN])
    assert done.returncode == 0, done.stderr
    assert 'sc.exe create gpufleet binPath= "' in done.stdout and "start= auto" in done.stdout
    assert f"start --data-dir {tmp_path / 'd'}" in done.stdout
    assert TOKEN not in done.stdout and not (tmp_path / "d").exists()  # printed only, nothing written
