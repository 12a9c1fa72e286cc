"""``gpufleet start``'s signal handling, in a real process whose graceful stop hangs.

The first SIGINT/SIGTERM only sets the stop event; a second one, or the 10 s deadline, stops at
once: ``at_once`` runs (it kills engines) and the process exits with 128 + the signal number.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# A "launcher" whose stop never finishes: it reports the first signal (a file), then waits forever.
HANGING = """
import asyncio, pathlib, sys
from gpufleet.cli import stop_signals

stop_signals.STOP_WITHIN = float(sys.argv[2])
out = pathlib.Path(sys.argv[1])

async def main():
    stop = asyncio.Event()
    stop_signals.StopSignals(stop, lambda: (out / "at_once").touch()).install(asyncio.get_running_loop())
    (out / "ready").touch()
    await stop.wait()
    (out / "stopping").touch()
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _start(tmp_path: Path, within: float) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", HANGING, str(tmp_path), str(within)])
    _until(lambda: (tmp_path / "ready").exists() or child.poll() is not None, "the process to install its handlers")
    assert child.poll() is None
    return child


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    child = _start(tmp_path, within=600.0)
    try:
        child.send_signal(signal.SIGINT)
        _until(lambda: (tmp_path / "stopping").exists(), "the graceful stop to begin")
        assert child.poll() is None and not (tmp_path / "at_once").exists()

        child.send_signal(signal.SIGINT)
        assert child.wait(5) == 128 + signal.SIGINT
        assert (tmp_path / "at_once").exists(), "engines were not killed"
    finally:
        child.kill()


def test_a_stop_that_overruns_its_deadline_is_forced(tmp_path: Path) -> None:
    child = _start(tmp_path, within=1.5)
    try:
        sent = time.monotonic()
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == 128 + signal.SIGTERM
        assert time.monotonic() - sent < 1.5 + 1.0
        assert (tmp_path / "at_once").exists()
    finally:
        child.kill()
