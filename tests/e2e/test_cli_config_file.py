"""``gpufleet start --config-file`` and ``--print-config``, run as a person runs them.

Precedence is flag > ``GPUFLEET_*`` > file > default; ``--print-config`` names the winner of each
setting and never prints a secret. A server started from the file really listens where it says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import GpufleetProcess, ports

pytestmark = pytest.mark.e2e


def start(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "gpufleet", "start", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **(env or {})},
        cwd=cwd,
    )


def rows(output: str) -> dict[str, tuple[str, str]]:
    """``--flag  value  from`` rows → {flag: (value, source)}; the value may be empty."""
    table: dict[str, tuple[str, str]] = {}
    for line in output.splitlines()[1:]:
        flag, rest = line.split(maxsplit=1)
        value, _, source = rest.rstrip().rpartition("  ")
        table[flag] = (value.strip(), source.strip())
    return table


def test_print_config_shows_each_winner_and_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "gpufleet.yaml"
    config.write_text(
        "port: 9001\nworker-port: 9002\nhost: 127.0.0.2\ntoken: file-secret-token\n"
        "database_url: postgresql://fleet:db-password@db.internal/fleet\ndata-dir: state\nlabels: {gpu: 4090}\n"
    )
    result = start(
        ["--config-file", str(config), "--worker-port", "7002", "--print-config"],
        env={"GPUFLEET_HOST": "127.0.0.3", "GPUFLEET_HUGGINGFACE_TOKEN": "hf_env_secret"},
    )
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table["--worker-port"] == ("7002", "flag --worker-port")  # flag beats file
    assert table["--host"] == ("127.0.0.3", "env GPUFLEET_HOST")  # environment beats file
    assert table["--port"] == ("9001", f"file {config}")
    assert table["--data-dir"] == (str(tmp_path / "state"), f"file {config}")  # relative to the file
    assert table["--labels"] == ("gpu=4090", f"file {config}")
    assert table["--heartbeat-interval"] == ("10.0", "default")
    assert table["--token"] == ("****", f"file {config}")
    assert table["--huggingface-token"] == ("****", "env GPUFLEET_HUGGINGFACE_TOKEN")
    assert table["--database-url"][0] == "postgresql://fleet:***@db.internal/fleet"
    for secret in ("file-secret-token", "db-password", "hf_env_secret"):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot: 9001\n", "'prot' is not a setting"),
        ("port: 0\n", "--port (from --config-file): Input should be greater than or equal to 1"),
        ("port: [\n", "not valid YAML"),
    ],
)
def test_a_bad_config_file_is_one_error_line_and_exit_2(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "gpufleet.yaml"
    config.write_text(text)
    result = start(["--config-file", str(config), "--print-config"])
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_started_from_the_file_listens_where_the_file_says(tmp_path: Path) -> None:
    port = ports(1)[0]
    config = tmp_path / "gpufleet.yaml"
    config.write_text(f"host: 127.0.0.1\nport: {port}\ndisable-worker: true\ndata-dir: data\n")
    process = GpufleetProcess([], tmp_path / "server.log", env={"GPUFLEET_CONFIG_FILE": str(config)}).start()
    try:
        process.wait_http(f"http://127.0.0.1:{port}/healthz")
        assert (tmp_path / "data" / "token").exists()  # the file's data dir, relative to the file
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False).status_code == 401
    finally:
        assert process.stop() == 0
