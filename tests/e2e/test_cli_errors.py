"""Bad input to ``gpufleet start`` gets one clear error line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.processes import GpufleetProcess, ports, run_cli

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels", "zone"], "--labels: Value error, label 'zone' is not of the form key=value"),
        (["--labels", "-bad=1"], "label key '-bad' must be"),
        (["--system-reserved", "{ram: 2}"], "--system-reserved: Value error, system reserved must be JSON"),
        (["--system-reserved", '{"ram": -1}'], "must be a number of GiB ≥ 0"),
        (["--system-reserved", '{"disk": 1}'], "accepts only 'ram' and 'vram'"),
        (["--server-url", "http://127.0.0.1:9"], "needs the cluster --token"),
        (["--server-url", "ftp://x", "--token", "t"], "must look like http://host:port"),
        (["--port", "70000"], "--port: Input should be less than or equal to 65535"),
        (["--worker-name", "has space"], "--worker-name: Value error, worker name must be"),
        (["--worker-ip", "not-an-ip"], "--worker-ip"),
        (["--heartbeat-interval", "0"], "--heartbeat-interval: Input should be greater than 0"),
        (["--log-level", "loud"], "log level must be one of"),
    ],
)
def test_invalid_flags(args: list[str], message: str) -> None:
    result = run_cli(["start", *args])
    assert result.returncode == 2, result.stderr
    assert message.replace("Value error, ", "") in result.stderr.replace("Value error, ", "")
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["start", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)])
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use: choose another with --port" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_device_inventory_names_the_file(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.json"
    inventory.write_text('{"gpus": [{"vendor": "nvidia", "name": "x", "type": "cuda", "memory": -5}]}')
    server_port, worker_port = ports(2)
    result = run_cli(
        [
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(server_port),
            "--data-dir",
            str(tmp_path / "d"),
            "--worker-port",
            str(worker_port),
            "--device-inventory",
            str(inventory),
        ]
    )
    assert result.returncode == 1
    assert f"device inventory {inventory} is invalid: gpus.0.memory" in result.stderr


def test_wrong_cluster_token_is_a_clear_error(tmp_path: Path) -> None:
    server_port, worker_port = ports(2)
    server = GpufleetProcess(
        [
            "--host",
            "127.0.0.1",
            "--port",
            str(server_port),
            "--data-dir",
            str(tmp_path / "s"),
            "--disable-worker",
        ],
        tmp_path / "s.log",
    ).start()
    try:
        server.wait_http(f"http://127.0.0.1:{server_port}/healthz")
        result = run_cli(
            [
                "start",
                "--server-url",
                f"http://127.0.0.1:{server_port}",
                "--token",
                "wrong",
                "--host",
                "127.0.0.1",
                "--worker-port",
                str(worker_port),
                "--data-dir",
                str(tmp_path / "w"),
            ]
        )
        assert result.returncode == 1
        assert "the server refused the cluster token" in result.stderr
    finally:
        server.stop()


def test_unusable_database_url(tmp_path: Path) -> None:
    result = run_cli(["start", "--host", "127.0.0.1", "--data-dir", str(tmp_path), "--database-url", "mysql://x"])
    assert result.returncode == 1 and "unsupported --database-url 'mysql://x'" in result.stderr
    result = run_cli(
        [
            "start",
            "--host",
            "127.0.0.1",
            "--data-dir",
            str(tmp_path),
            "--disable-worker",
            "--database-url",
            "postgresql://nobody@127.0.0.1:1/none",
        ]
    )
    assert result.returncode == 1 and "cannot use the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    version = run_cli(["--version"]).stdout.splitlines()
    assert version[0].startswith("gpufleet ")
    # and each installed engine's version, or how to install one
    assert version[1].startswith("llama.cpp ") or "gpufleet engines install" in version[1], version
    listed = run_cli(["engines", "list"])  # the same installed engines, as a table
    assert listed.returncode == 0 and ("llama.cpp" in listed.stdout or "no engines installed" in listed.stdout)
    completion = run_cli(["--show-completion", "bash"])  # what --install-completion writes for bash
    assert completion.returncode == 0 and "_gpufleet_completion" in completion.stdout
    help_text = run_cli(["start", "--help"]).stdout
    for flag in (
        "--host",
        "--port",
        "--data-dir",
        "--database-url",
        "--bootstrap-password",
        "--token",
        "--disable-worker",
        "--server-url",
        "--worker-name",
        "--worker-ip",
        "--worker-port",
        "--labels",
        "--device-inventory",
        "--system-reserved",
        "--heartbeat-interval",
    ):
        assert flag in help_text
