"""An engine OS process the worker started: run, watch, stop, and find again after a worker restart.

Engines run in their own process session (``start_new_session``), so they survive the worker and
the server being killed. Each one is recorded in ``<data-dir>/engines/<instance id>.json`` (pid,
port, command, start time); a restarted worker re-adopts a recorded process that is still alive
with the same command line, keeping its pid, instead of starting it again. A record keeps a digest
of the engine's API key, never the key (the key reaches the engine through its environment), and
the placement the engine was started for (its devices): the supervisor adopts an engine only for
the same placement, since an instance moved away and placed here again may have other devices.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

STOP_DEADLINE = 10.0  # seconds between SIGTERM and SIGKILL
LOG_LIMIT = 64 * 1024 * 1024  # bytes an engine log may reach before it is rotated


@dataclass
class EngineRecord:
    instance_id: int
    role: str  # "server" (serves the instance) | "rpc" (lends this worker's devices to another worker)
    pid: int
    port: int
    command: list[str]
    log: str
    started_at: float  # psutil create_time of the process
    # What the engine's process is called in messages, and where it answers once healthy (servers).
    program: str = ""
    health_path: str = ""
    # ``key_digest`` of the API key the engine was started with; "" for none (rpc servers, and servers
    # started before engines had keys: those are restarted rather than adopted, see the supervisor).
    key_digest: str = ""
    # The placement the engine serves (``runner.placement_of``); empty in records written before it
    # was kept: such an engine cannot be shown to match its instance's placement, so it is restarted.
    placement: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.program:  # recorded before these fields existed, when every engine was llama.cpp's
            server = self.role == "server"
            self.program, self.health_path = ("llama-server", "/health") if server else ("ggml-rpc-server", "")


class EngineProcess:
    """A running engine, started by us now or adopted from a record."""

    def __init__(self, record: EngineRecord, child: subprocess.Popen[bytes] | None = None) -> None:
        self.record = record
        self._child = child

    @property
    def pid(self) -> int:
        return self.record.pid

    @property
    def port(self) -> int:
        return self.record.port

    def alive(self) -> bool:
        if self._child is not None:
            return self._child.poll() is None
        try:
            process = psutil.Process(self.record.pid)
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def exit_code(self) -> int | None:
        return self._child.poll() if self._child is not None else None

    async def wait(self, poll: float = 0.5) -> None:
        """Return when the process has exited (ours: reaped; adopted: gone)."""
        while self.alive():
            await asyncio.sleep(poll)

    async def stop(self, deadline: float = STOP_DEADLINE) -> None:
        """SIGTERM, wait up to ``deadline``, then SIGKILL. Safe on a process already gone.

        The engine and every process it started go: an engine may run several (vLLM: its API
        server, the engine core, a worker per device, multiprocessing's resource tracker), all
        in its process group, which the signals reach; the stop returns once each of them is gone,
        not only the first, so that their memory and ports are free when it returns."""
        if not self.alive():
            return
        descendants = self._descendants()
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(0.1), deadline)
        except TimeoutError:
            logger.warning("engine pid %d ignored SIGTERM for %.0fs: killing it", self.pid, deadline)
            self._signal(signal.SIGKILL)
            await self.wait(0.1)
        left = max(0.0, ends - loop.time())
        _, lingering = await asyncio.to_thread(psutil.wait_procs, descendants, left)
        if lingering:
            logger.warning(
                "engine pid %d: its processes %s outlived it: killing them", self.pid, [p.pid for p in lingering]
            )
            self._signal(signal.SIGKILL)
            for process in lingering:
                _kill(process)
            await asyncio.to_thread(psutil.wait_procs, lingering, 5.0)

    def kill(self) -> None:
        """SIGKILL now, without waiting (stopping at once); the process is reaped or gone soon after."""
        if self.alive():
            descendants = self._descendants()
            self._signal(signal.SIGKILL)
            for process in descendants:
                _kill(process)

    def _descendants(self) -> list[psutil.Process]:
        """The processes the engine started (and they started), while it runs."""
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def _signal(self, number: int) -> None:
        try:
            os.killpg(self.pid, number)  # its own session: take its children too
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(self.pid, number)


def _kill(process: psutil.Process) -> None:
    """SIGKILL one process of an engine (one that left its process group, or outlived the engine)."""
    try:
        process.kill()
    except psutil.NoSuchProcess:
        return
    except psutil.AccessDenied:
        logger.warning("cannot kill pid %d (started by the engine): permission denied", process.pid)


def launch(
    record_dir: Path,
    instance_id: int,
    role: str,
    command: list[str],
    port: int,
    log: Path,
    env: dict[str, str],
    *,
    program: str,
    health_path: str = "",
    key_digest: str = "",
    placement: list[str] | None = None,
) -> EngineProcess:
    """Start ``command`` in its own session with output appended to ``log``; record it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        child = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    try:
        started = psutil.Process(child.pid).create_time()
    except psutil.Error:
        started = 0.0
    record = EngineRecord(
        instance_id,
        role,
        child.pid,
        port,
        command,
        str(log),
        started,
        program,
        health_path,
        key_digest,
        list(placement or []),
    )
    save(record_dir, record)
    return EngineProcess(record, child)


def key_digest(api_key: str) -> str:
    """What a record keeps of an engine's API key: enough to tell whether it changed, not the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def _path(record_dir: Path, instance_id: int, role: str) -> Path:
    return record_dir / f"{instance_id}-{role}.json"


def save(record_dir: Path, record: EngineRecord) -> None:
    record_dir.mkdir(parents=True, exist_ok=True)
    _path(record_dir, record.instance_id, record.role).write_text(json.dumps(asdict(record)))


def forget(record_dir: Path, instance_id: int, role: str) -> None:
    _path(record_dir, instance_id, role).unlink(missing_ok=True)


def adoptable(record_dir: Path) -> list[EngineProcess]:
    """Recorded engines still running (same pid, start time and command line); stale records are removed."""
    result = []
    for path in sorted(record_dir.glob("*.json")) if record_dir.exists() else []:
        try:
            record = EngineRecord(**json.loads(path.read_text()))
            process = psutil.Process(record.pid)
            same = process.cmdline() == record.command and abs(process.create_time() - record.started_at) < 1.0
        except (OSError, ValueError, TypeError, psutil.Error):
            same = False
        if same:
            result.append(EngineProcess(record))
        else:
            path.unlink(missing_ok=True)
    return result


def tail(log: Path, lines: int = 20) -> str:
    """The last lines of an engine's log (for an error message)."""
    try:
        with log.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def rotate(log: Path, limit: int = LOG_LIMIT) -> bool:
    """Copy-and-truncate an engine log over ``limit`` bytes into ``<log>.1`` (one generation kept).

    The engine keeps writing to its open file, which it opened for appending, so after the
    truncation its next line lands at the start; lines written between copy and truncate are lost
    (the known cost of copy-truncate, which needs no help from the engine).
    """
    try:
        if log.stat().st_size <= limit:
            return False
        shutil.copyfile(log, log.with_name(log.name + ".1"))
        with log.open("r+b") as handle:
            handle.truncate(0)
    except OSError as exc:
        logger.warning("could not rotate %s: %s", log, exc)
        return False
    return True
