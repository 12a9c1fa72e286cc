"""Real ``gpufleet start`` processes on loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gpufleet.common.net import free_port


class GpufleetProcess:
    """``python -m gpufleet start ARGS`` with its output in ``log``; stopped (SIGTERM, then SIGKILL) at exit."""

    def __init__(
        self, args: list[str], log: Path, env: dict[str, str] | None = None, prefix: list[str] | None = None
    ) -> None:
        """``prefix`` runs it through another command, e.g. ``ip netns exec NS`` (which execs in place)."""
        self.args = args
        self.prefix = prefix or []
        self.log = log
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GpufleetProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "gpufleet", "start", *self.args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        handle.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"gpufleet exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"gpufleet did not stop within {timeout}s after SIGTERM:\n{self.output()}"
                ) from exc
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)


def run_cli(args: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "gpufleet", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def ports(count: int) -> list[int]:
    chosen: set[int] = set()
    while len(chosen) < count:
        chosen.add(free_port())
    return sorted(chosen)
