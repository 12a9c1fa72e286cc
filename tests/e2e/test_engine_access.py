"""Engines accept only the gateway, and nothing secret is on a command line or readable by others
(issue 12, findings 2 and 12), against a real ``gpufleet start`` and real llama-server engines.

- An instance's llama-server requires the instance's own API key: a request straight to its port
  without it gets 401; the gateway presents it (200). ``/health`` stays open for the worker.
- The key reaches the engine through its environment: not in its command line (``ps``), not in
  the instance listing, not in the engine record on disk.
- The data dir is 0700; the database, its WAL files and the secret files 0600.
- An engine left running by a gpufleet from before engine keys (its record has no key digest) is
  restarted with a key, not adopted.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gpufleet.engines.llama_cpp_allowed import BY_SPELLING
from gpufleet.server import secrets
from tests.support.engine_cluster import Engines, alive, chat, engine_headers
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

HI = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cmdlines_of_spawned(engines: Engines, engine_pids: list[int]) -> list[str]:
    """The command lines of every process gpufleet started: its children (engines run in their own
    session, but are still its children) and the engines it recorded."""
    processes = psutil.Process(engines.server.pid).children(recursive=True)
    processes += [psutil.Process(pid) for pid in engine_pids]
    return [" ".join(process.cmdline()) for process in processes]


def test_an_engine_answers_only_requests_with_its_key(engines: Engines) -> None:
    model = engines.deploy("tiny-keyed", engines.models / "llama-tiny.gguf")
    try:
        [instance] = engines.wait_running(model["id"], 1)
        direct = f"http://127.0.0.1:{instance['port']}"
        body = {"model": "tiny-keyed", **HI}

        # straight to the engine's port: refused without the key, or with another instance's
        bare = httpx.post(f"{direct}/v1/chat/completions", json=body, timeout=30, trust_env=False)
        assert bare.status_code == 401, bare.text
        token = (engines.cluster.root / "server" / "token").read_text().strip()
        other = {"Authorization": f"Bearer {secrets.engine_key(token, instance['id'] + 1000)}"}
        wrong = httpx.post(f"{direct}/v1/chat/completions", json=body, headers=other, timeout=30, trust_env=False)
        assert wrong.status_code == 401, wrong.text
        for path in ("/metrics", "/slots"):
            assert httpx.get(direct + path, timeout=10, trust_env=False).status_code == 401, path
        assert httpx.get(f"{direct}/health", timeout=10, trust_env=False).status_code == 200  # the worker's probe

        # the gateway presents the key
        key = engines.admin.post("/api/api-keys", json={"name": "tiny-keyed"}).json()["key"]
        through = httpx.post(
            f"{engines.cluster.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
            trust_env=False,
        )
        assert through.status_code == 200, through.text
        assert chat(instance, "tiny-keyed").status_code == 200  # and so may whoever holds the key

        # the key is the instance's own, in the engine's environment only
        engine_key = engine_headers(instance["pid"])["Authorization"].removeprefix("Bearer ")
        assert engine_key == secrets.engine_key(token, instance["id"])
        assert engine_key not in " ".join(psutil.Process(instance["pid"]).cmdline())
        assert engine_key not in Path(f"/proc/{instance['pid']}/cmdline").read_bytes().decode()
        assert engine_key not in engines.admin.get("/api/model-instances").text
        assert engine_key not in engines.admin.get("/api/models").text
        records = engines.cluster.root / "server" / "engines"
        assert all(engine_key not in record.read_text() for record in records.glob("*.json"))

        # no process gpufleet started carries a secret in its command line
        secrets_ = {"engine key": engine_key, "cluster token": token, "admin password": ADMIN_PASSWORD}
        for line in cmdlines_of_spawned(engines, [instance["pid"]]):
            for name, value in secrets_.items():
                assert value not in line, f"the {name} is in the command line {line!r}"
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def test_the_data_dir_and_its_secrets_are_private(engines: Engines) -> None:
    data_dir = engines.cluster.root / "server"
    assert mode(data_dir) == 0o700
    for name in ("gpufleet.db", "token", "worker.json"):
        assert mode(data_dir / name) == 0o600, name
    for sidecar in ("gpufleet.db-wal", "gpufleet.db-shm"):
        if (data_dir / sidecar).exists():  # SQLite gives them the database file's mode
            assert mode(data_dir / sidecar) == 0o600, sidecar


def test_an_engine_from_before_engine_keys_is_restarted_not_adopted(engines: Engines) -> None:
    model = engines.deploy("tiny-unkeyed", engines.models / "llama-tiny.gguf")
    try:
        [before] = engines.wait_running(model["id"], 1)
        engines.server.kill()  # server and embedded worker go; the engine stays (a graceful stop would end it)
        assert alive(before["pid"])
        # the record as a gpufleet before engine keys wrote it: no key digest
        [record] = (engines.cluster.root / "server" / "engines").glob(f"{before['id']}-server.json")
        fields: dict[str, Any] = json.loads(record.read_text())
        del fields["key_digest"]
        record.write_text(json.dumps(fields))

        engines.server.start()
        engines.server.wait_http(f"{engines.cluster.url}/healthz")
        engines.admin.close()
        engines.admin = engines.cluster.admin()
        [after] = engines.wait(
            model["id"],
            lambda xs: len(xs) == 1 and xs[0]["state"] == "running" and xs[0]["pid"] != before["pid"],
            "the engine restarted with a key",
        )
        assert not alive(before["pid"])
        assert chat(after, "tiny-unkeyed").status_code == 200
        bare = httpx.post(
            f"http://127.0.0.1:{after['port']}/v1/chat/completions",
            json={"model": "tiny-unkeyed", **HI},
            timeout=30,
            trust_env=False,
        )
        assert bare.status_code == 401
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def test_every_allowed_flag_is_one_the_engine_knows(engines: Engines) -> None:
    """An allowed flag llama-server does not know would only make every instance fail to start."""
    shown = subprocess.run(
        [str(engines.llama_server), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    known = set(re.findall(r"(?<![\w-])(--?[a-z][\w+-]*)", shown.stdout + shown.stderr))
    assert sorted(set(BY_SPELLING) - known) == []
