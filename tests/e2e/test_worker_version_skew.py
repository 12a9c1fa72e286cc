"""A real worker-only ``gpufleet start --server-url`` whose gpufleet is too far from the server's
exits 1 at once with the server's reason on stderr; one a minor version away joins, with a warning.

The worker runs another release by setting ``gpufleet.__version__`` in its own ``python -c``
before the CLI is imported (what the worker reports in its status); gpufleet has no flag or
variable for that, on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gpufleet
from gpufleet.common.version_skew import Release
from tests.support.gpufleet_cluster import HEARTBEAT, Cluster
from tests.support.processes import ports

pytestmark = pytest.mark.e2e

AS_RELEASE = "import sys, gpufleet; gpufleet.__version__ = sys.argv[1]; from gpufleet.cli import app; " + (
    "app(prog_name='gpufleet', args=sys.argv[2:])"
)
DEADLINE = 30.0


def worker_command(cluster: Cluster, version: str, name: str) -> list[str]:
    token = (cluster.root / "server" / "token").read_text().strip()
    return [
        sys.executable,
        "-c",
        AS_RELEASE,
        version,
        "start",
        "--server-url",
        cluster.url,
        "--token",
        token,
        "--host",
        "127.0.0.1",
        "--worker-name",
        name,
        "--worker-port",
        str(ports(1)[0]),
        "--data-dir",
        str(cluster.root / name),
        "--heartbeat-interval",
        str(HEARTBEAT),
    ]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}


def test_a_worker_two_minor_versions_newer_exits_1_saying_what_to_upgrade(cluster: Cluster) -> None:
    cluster.start_server("--disable-worker")
    own = Release.parse(gpufleet.__version__)
    assert own is not None
    newer = f"{own.major}.{own.minor + 2}.0"
    started = time.monotonic()
    done = subprocess.run(
        worker_command(cluster, newer, "too-new"),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=clean_env(),
    )
    stderr = " ".join(done.stderr.split())  # the console may wrap a long line
    assert done.returncode == 1, done.stderr
    expected = (
        f"error: registration refused: worker gpufleet {newer} cannot join server gpufleet {gpufleet.__version__}: "
        f"upgrade the server to {own.major}.{own.minor + 2}, or run gpufleet {own} or {own.major}.{own.minor + 1} "
        "on the worker"
    )
    assert expected in stderr, done.stderr
    assert "Traceback" not in done.stderr and "waiting for the server" not in done.stderr  # refused once, no retry
    assert time.monotonic() - started < DEADLINE
    with cluster.admin() as admin:
        assert cluster.worker(admin, "too-new") is None


def test_a_worker_one_minor_version_newer_joins_and_both_sides_say_so(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_server("--disable-worker")
    own = Release.parse(gpufleet.__version__)
    assert own is not None
    newer = f"{own.major}.{own.minor + 1}.0"
    log = tmp_path / "newer.log"
    with log.open("wb") as handle:
        worker = subprocess.Popen(
            worker_command(cluster, newer, "newer"),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            start_new_session=True,
        )
    try:
        with cluster.admin() as admin:
            joined = cluster.wait_state(admin, "newer", "ready", timeout=DEADLINE)
        assert joined["gpufleet_version"] == newer
        warning = re.search(r"one minor version apart", " ".join(log.read_text().split()))
        assert warning is not None, log.read_text()
        server_log = " ".join((cluster.root / "server.log").read_text().split())
        assert f"worker 'newer' joins: worker gpufleet {newer} and server gpufleet" in server_log
    finally:
        worker.terminate()
        assert worker.wait(15) == 0, log.read_text()
