"""A deployment change replaces a real engine without a gap: the new llama-server runs before the old dies.

One ``gpufleet start`` (server + embedded worker) with real llama-server engines on a tiny
generated GGUF (the shared ``engines`` fixture).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import psutil
import pytest

from tests.support.engine_cluster import ENGINE_TIMEOUT, Engines, alive, chat

pytestmark = pytest.mark.e2e


class DeathWatch:
    """Samples a process every 5 ms in a thread and records when it was first seen gone.

    The recorded time is at or after the real exit (sampling only delays it), so "X happened before
    ``died_by``" never fails when X really happened before the exit.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.died_by: float | None = None  # wall clock (time.time()), like the server's timestamps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            if not alive(self.pid):
                self.died_by = time.time()
                return
            time.sleep(0.005)

    def __enter__(self) -> DeathWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def ctx_flag(pid: int) -> str:
    cmdline = psutil.Process(pid).cmdline()
    return cmdline[cmdline.index("-c") + 1]


def test_a_ctx_size_change_starts_the_new_engine_before_the_old_one_stops(engines: Engines) -> None:
    model = engines.deploy("tiny-roll", engines.models / "llama-tiny.gguf", ctx_size=512)
    [old] = engines.wait_running(model["id"], 1)
    assert ctx_flag(old["pid"]) == "512"

    changed = engines.admin.patch(f"/api/models/{model['id']}", json={"ctx_size": 1024})
    assert changed.status_code == 200, changed.text
    new_hash = changed.json()["spec_hash"]
    assert new_hash != old["spec_hash"]

    with DeathWatch(old["pid"]) as old_engine:
        deadline = time.monotonic() + ENGINE_TIMEOUT
        while True:
            listed = engines.instances(model["id"])
            running = [x for x in listed if x["state"] == "running"]
            # Availability: at every look, some instance is running, and its engine process is alive.
            assert running and any(alive(x["pid"]) for x in running), listed
            new = [x for x in running if x["spec_hash"] == new_hash]
            if len(listed) == 1 and new and old_engine.died_by is not None:
                break
            assert time.monotonic() < deadline, f"roll unfinished: {listed}\n{engines.server.output()[-4000:]}"
            time.sleep(0.05)

    [replacement] = new
    # The new instance turned running (its last change; the server's clock is this machine's) before
    # the old engine exited.
    became_running = datetime.fromisoformat(replacement["updated_at"]).timestamp()
    assert old_engine.died_by is not None and became_running < old_engine.died_by
    assert replacement["id"] != old["id"] and replacement["pid"] != old["pid"]
    assert ctx_flag(replacement["pid"]) == "1024"
    assert chat(replacement, "tiny-roll").status_code == 200
    final = engines.admin.get(f"/api/models/{model['id']}").json()
    assert (final["ready_replicas"], final["updated_replicas"], final["outdated_replicas"]) == (1, 1, 0)

    assert engines.admin.delete(f"/api/models/{model['id']}").status_code == 204
    deadline = time.monotonic() + 15
    while alive(replacement["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(replacement["pid"])
