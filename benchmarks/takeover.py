"""Leader takeover: three ``gpufleet start --disable-worker`` servers on one PostgreSQL database.

Each round finds the leader (``GET /healthz`` → ``"leader": true``), kills it with SIGKILL, creates a
deployment through a survivor at once, and measures:

- **elected**: from the kill until a survivor answers ``"leader": true``;
- **placing again**: from the kill until that deployment's instance is placed by the new leader;

then starts the killed server again (it rejoins as a follower) for the next round. One simulated
worker (8 × H100 80 GB, answered by a small HTTP server here) heartbeats to every server in turn.
No peer: GPUStack has no open-source high availability (#1115, #2096, #4319).

    .venv/bin/python -m benchmarks.takeover [--rounds 5] [--out benchmarks/results/takeover.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from gpufleet.common.net import free_port
from testkit.synthetic import preset, scaled, write_model
from tests.support.builders import worker_registration  # the registration body the tests use

ADMIN_URL = os.environ.get("GPUFLEET_TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
PASSWORD = "admin-password-1"
TOKEN = "takeover-benchmark-token-0123"


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ok", "role": "worker"}')

    def log_message(self, *_: Any) -> None:
        pass


class Server:
    def __init__(self, root: Path, index: int, database_url: str, models: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "gpufleet", "start", "--disable-worker", "--host", "127.0.0.1"]
        self.args += ["--port", str(self.port), "--database-url", database_url, "--data-dir", str(root / f"s{index}")]
        self.args += ["--allowed-model-dirs", str(models), "--log-level", "warning"]
        self.log = root / f"s{index}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
        env |= {"GPUFLEET_TOKEN": TOKEN, "GPUFLEET_BOOTSTRAP_PASSWORD": PASSWORD}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1, trust_env=False).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server on {self.url} did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def leader(servers: list[Server]) -> Server | None:
    for server in servers:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=2, trust_env=False).json()["leader"] is True:
                return server
    return None


def wait(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise RuntimeError("timed out")


async def _sql(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def run(rounds: int) -> dict[str, Any]:
    name = f"gpufleet_takeover_{secrets.token_hex(4)}"
    asyncio.run(_sql(f'CREATE DATABASE "{name}"'))
    database_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    probe = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=probe.serve_forever, daemon=True).start()
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "models" / "small.gguf"
        write_model(model, scaled(preset("llama-3.1-8b"), n_layer=4), "f16", sparse=True)
        servers = [Server(root, i, database_url, model.parent) for i in range(3)]
        try:
            for server in servers:
                server.start()
            urls = [s.url for s in servers]
            session = httpx.post(f"{urls[0]}/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()
            admin = {"Authorization": f"Bearer {session['access_token']}"}
            body = worker_registration("bench", gpus=8, port=probe.server_address[1])
            joined = httpx.post(
                f"{urls[0]}/api/workers/register", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            ).json()
            threading.Thread(target=_heartbeat, args=(urls, joined, stop), daemon=True).start()
            results = []
            for i in range(rounds):
                results.append(_round(i, servers, model, admin))
        finally:
            stop.set()
            for server in servers:
                if server.process is not None and server.process.poll() is None:
                    server.kill()
            probe.shutdown()
            asyncio.run(_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    elected_all = [r["elected_s"] for r in results]
    placing_all = [r["placing_again_s"] for r in results]
    return {
        "rounds": results,
        "elected_median_s": statistics.median(elected_all),
        "elected_max_s": max(elected_all),
        "placing_again_median_s": statistics.median(placing_all),
        "placing_again_max_s": max(placing_all),
    }


def _round(i: int, servers: list[Server], model: Path, admin: dict[str, str]) -> dict[str, float]:
    old = wait(lambda: leader(servers))
    survivors = [s for s in servers if s is not old]
    old.kill()
    killed = time.monotonic()
    deployment = {"name": f"after-kill-{i}", "source": "local_path", "local_path": str(model)}
    created = httpx.post(f"{survivors[0].url}/api/models", json=deployment, headers=admin, timeout=30).json()
    wait(lambda: leader(survivors))
    elected = time.monotonic() - killed
    wait(lambda: _placed(survivors[0].url, admin, created["id"]))
    placing = time.monotonic() - killed
    print(f"round {i + 1}: elected after {elected:.2f}s, placing again after {placing:.2f}s")
    old.start()  # back as a follower for the next round
    return {"elected_s": round(elected, 3), "placing_again_s": round(placing, 3)}


def _placed(url: str, admin: dict[str, str], model_id: int) -> bool:
    listed = httpx.get(f"{url}/api/model-instances", params={"model_id": model_id}, headers=admin).json()
    return bool(listed) and listed[0]["worker_id"] is not None


def _heartbeat(urls: list[str], joined: dict[str, Any], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {joined['credential']}"}
    while not stop.wait(2):
        for url in urls:
            with contextlib.suppress(httpx.HTTPError):
                beat = f"{url}/api/workers/{joined['worker']['id']}/heartbeat"
                if httpx.post(beat, json={}, headers=headers, timeout=3).status_code == 200:
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    summary = run(args.rounds)
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
