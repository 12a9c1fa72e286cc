"""Fleet scale: one ``gpufleet start --disable-worker`` and N simulated workers speaking the real protocol.

Each simulated worker registers with the cluster token (8 × H100, the ``--device-inventory`` shape),
keeps ``GET /api/watch?kinds=instances`` open with its own credential, and sends ``{}`` as its
heartbeat every interval, the N workers spread evenly over the interval. The server probes every
worker's ``ip:port/healthz``: one small HTTP server of the load generator answers for all of them.
Load processes (``--processes``) share the workers; the server runs on SQLite or PostgreSQL.

Per N, after registration and a warm-up (every worker probed and ``ready``), a steady state of
``--steady`` seconds measures:

- registration time (all N) and p99 per registration;
- heartbeat p50 / p99 and errors, over the steady state;
- workers ``ready`` at its end (all of them, or some flapped);
- ``GET /api/workers?limit=100`` p50 / p99 (an admin paging, once a second; a server without
  paging answers every worker);
- ``POST /api/models/preview`` p99 (a 8B model, 20 calls);
- the time to place 1,000 pending instances (one deployment of 1,000 replicas);
- server CPU (% of one core) and RSS during the steady state.

Targets (fleet-scale issue, this 2-core machine): 2,000 workers on SQLite: all ``ready``, heartbeat
p99 < 100 ms, CPU < 30 % of a core, list p99 < 100 ms, zero errors; 10,000 workers on PostgreSQL
with the same p99s. The ratio columns compare with the targets.

    .venv/bin/python -m benchmarks.scale --workers 500,2000 [--database sqlite|postgresql] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web
from rich.console import Console
from rich.table import Table

from gpufleet.common.net import free_port
from gpufleet.common.units import GiB
from testkit.synthetic import preset, write_model

console = Console(highlight=False, width=180)
PASSWORD = "scale-benchmark"
TARGET_P99 = 0.100  # seconds: heartbeat and admin list p99 targets
TARGET_CPU = 30.0  # % of one core at steady state (2,000 workers, SQLite)
WARMUP_LIMIT = 600.0  # seconds for every worker to register and be ready before the steady state
GPUS = 8


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def registration(name: str, health_port: int) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {
            "index": i,
            "type": "cuda",
            "vendor": "nvidia",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total": 80 * GiB,
            "memory_used": GiB,
            "compute_capability": "9.0",
            "simulated": True,
        }
        for i in range(GPUS)
    ]
    devices.append(
        {"index": 0, "type": "cpu", "vendor": "amd", "name": "EPYC", "memory_total": 2048 * GiB, "cores": 128}
    )
    return {
        "name": name,
        "ip": "127.0.0.1",
        "port": health_port,
        "labels": {"rack": name[:4]},
        "system_reserved": {"ram": 2 * GiB, "vram": GiB},
        "status": {
            "hostname": name,
            "os": "linux",
            "arch": "amd64",
            "cpu_cores": 128,
            "memory_total": 2048 * GiB,
            "memory_used": 64 * GiB,
            "devices": devices,
            "gpufleet_version": "scale-benchmark",
        },
    }


@dataclass
class SliceResult:
    """What one load process saw."""

    registration_seconds: list[float] = field(default_factory=list)
    registration_span: tuple[float, float] = (0.0, 0.0)  # wall clock: first registration sent, last answered
    heartbeat_seconds: list[float] = field(default_factory=list)
    heartbeat_errors: int = 0
    watch_errors: int = 0
    errors: list[str] = field(default_factory=list)


async def _health_server(port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/healthz", lambda _: web.Response(text="ok"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    return runner


async def _watch(
    session: aiohttp.ClientSession, url: str, credential: str, stop: asyncio.Event, result: SliceResult
) -> None:
    headers = {"Authorization": f"Bearer {credential}"}
    while not stop.is_set():
        try:
            async with session.get(f"{url}/api/watch?kinds=instances", headers=headers, timeout=None) as response:
                async for _ in response.content:
                    if stop.is_set():
                        return
        except (TimeoutError, aiohttp.ClientError):
            result.watch_errors += 1
            await asyncio.sleep(1)


async def _beat(
    session: aiohttp.ClientSession,
    url: str,
    worker_id: int,
    credential: str,
    offset: float,
    interval: float,
    window: Any,
    stop: asyncio.Event,
    result: SliceResult,
) -> None:
    headers = {"Authorization": f"Bearer {credential}", "content-type": "application/json"}
    loop = asyncio.get_running_loop()
    next_at = loop.time() + offset
    while not stop.is_set():
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at += interval
        started = loop.time()
        try:
            async with session.post(f"{url}/api/workers/{worker_id}/heartbeat", data=b"{}", headers=headers) as answer:
                await answer.read()
                ok = answer.status == 200
        except (TimeoutError, aiohttp.ClientError) as exc:
            ok = False
            if len(result.errors) < 5:
                result.errors.append(f"heartbeat: {type(exc).__name__} {exc}")
        if window[0] <= time.time() < window[1]:  # read live: the window opens once every worker is ready
            result.heartbeat_seconds.append(loop.time() - started)
            result.heartbeat_errors += 0 if ok else 1


async def run_slice(
    url: str, token: str, names: list[str], health_port: int, interval: float, window: Any, done: Any
) -> SliceResult:
    """Register ``names``, then watch and heartbeat until ``done`` (a multiprocessing event) is set;
    heartbeats are timed within ``window`` (the steady state)."""
    result = SliceResult()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=120)
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        limiter = asyncio.Semaphore(32)

        async def register(name: str) -> tuple[int, str] | None:
            async with limiter:
                started = time.monotonic()
                try:
                    async with session.post(
                        f"{url}/api/workers/register",
                        json=registration(name, health_port),
                        headers={"Authorization": f"Bearer {token}"},
                    ) as answer:
                        body = await answer.json()
                        if answer.status != 200:
                            result.errors.append(f"register {name}: HTTP {answer.status} {body}")
                            return None
                except (TimeoutError, aiohttp.ClientError) as exc:
                    result.errors.append(f"register {name}: {type(exc).__name__} {exc}")
                    return None
                result.registration_seconds.append(time.monotonic() - started)
                return int(body["worker"]["id"]), str(body["credential"])

        began = time.time()
        joined = [r for r in await asyncio.gather(*(register(n) for n in names)) if r is not None]
        result.registration_span = (began, time.time())
        tasks = []
        for position, (worker_id, credential) in enumerate(joined):
            offset = interval * position / max(1, len(joined))
            tasks.append(asyncio.create_task(_watch(session, url, credential, stop, result)))
            tasks.append(
                asyncio.create_task(_beat(session, url, worker_id, credential, offset, interval, window, stop, result))
            )
        while not done.is_set():  # beat on through the placement phase, which needs ready workers
            await asyncio.sleep(0.5)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


def slice_process(args: tuple[str, str, list[str], int, float], window: Any, done: Any, queue: Any) -> None:
    url, token, names, health_port, interval = args
    queue.put(asdict(asyncio.run(run_slice(url, token, names, health_port, interval, window, done))))


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    data: Path

    def admin(self) -> dict[str, str]:
        import httpx

        token = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}, trust_env=False, timeout=60
        ).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}


def start_server(root: Path, database: str, interval: float, models: Path) -> Server:
    import httpx

    port = free_port()
    data = root / "data"
    command = [sys.executable, "-m", "gpufleet", "start", "--disable-worker", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(data), "--bootstrap-password", PASSWORD]
    command += ["--heartbeat-interval", str(interval), "--allowed-model-dirs", str(models), "--log-level", "warning"]
    if database == "postgresql":
        name = f"gpufleet_scale_{port}"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
            check=True,
            capture_output=True,
        )
        command += ["--database-url", f"postgresql://postgres@127.0.0.1:5432/{name}"]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200:
                return Server(process, url, data)
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"gpufleet did not start:\n{(root / 'server.log').read_text()[-3000:]}")


async def admin_probes(server: Server, headers: dict[str, str], until: float) -> tuple[list[float], int]:
    """``GET /api/workers?limit=100`` once a second until ``until``: latencies and errors."""
    seconds: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as session:
        while time.time() < until:
            started = time.monotonic()
            try:
                async with session.get(f"{server.url}/api/workers", params={"limit": "100"}) as answer:
                    await answer.read()
                    errors += answer.status != 200
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
            seconds.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return seconds, errors


def workers_by_state(server: Server, headers: dict[str, str]) -> dict[str, int]:
    """How many workers are in each state: one page of one row per state (its total), not the whole list."""
    import httpx

    counts: dict[str, int] = {}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120, trust_env=False) as client:
        for state in ("ready", "not_ready", "unreachable", "maintenance"):
            page = client.get("/api/workers", params={"limit": 1, "state": state}).json()
            if page["total"]:
                counts[state] = page["total"]
    return counts


def wait_ready(server: Server, headers: dict[str, str], count: int, timeout: float) -> float:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):  # an overloaded server: ask again
            if workers_by_state(server, headers).get("ready", 0) >= count:
                return time.monotonic() - started
        time.sleep(2)
    return float("nan")


def preview_and_place(server: Server, headers: dict[str, str], model: Path, replicas: int) -> dict[str, float]:
    import httpx

    body = {"name": "scale-8b", "source": "local_path", "local_path": str(model)}
    previews = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=300, trust_env=False) as client:
        for _ in range(20):
            started = time.monotonic()
            answer = client.post("/api/models/preview", json=body)
            previews.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
        started = time.monotonic()
        created = client.post("/api/models", json={**body, "replicas": replicas})
        assert created.status_code == 201, created.text
        model_id = created.json()["id"]
        placed = float("nan")
        while time.monotonic() - started < 600:
            listed = client.get("/api/model-instances", params={"model_id": model_id}).json()
            rows = listed["items"] if isinstance(listed, dict) else listed
            if sum(r["state"] == "scheduled" for r in rows) >= replicas:
                placed = time.monotonic() - started
                break
            time.sleep(1)
    return {"preview_p99": percentile(previews, 0.99), "place_seconds": placed}


def run(n: int, database: str, interval: float, steady: float, processes: int, models: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"gpufleet-scale-{n}-") as tmp:
        root = Path(tmp)
        server = start_server(root, database, interval, models)
        try:
            headers = server.admin()
            token = (server.data / "token").read_text().strip()
            health_port = free_port()
            spawn = multiprocessing.get_context("spawn")
            health = spawn.Process(target=_serve_health, args=(health_port,), daemon=True)
            health.start()
            names = [f"sim{i:05d}" for i in range(n)]
            queue = spawn.Queue()
            done = spawn.Event()
            window = spawn.Array("d", [float("inf"), float("inf")])  # the steady state, wall clock; set below
            slices = [names[i::processes] for i in range(processes)]
            workers = [
                spawn.Process(
                    target=slice_process,
                    args=((server.url, token, part, health_port, interval), window, done, queue),
                )
                for part in slices
            ]
            for process in workers:
                process.start()
            # The steady state begins once every worker is registered, probed and ready, and one more
            # interval has passed (every worker's first plain heartbeat is behind it).
            ready_after = wait_ready(server, headers, n, WARMUP_LIMIT)
            time.sleep(interval)
            measure_from = time.time()
            until = measure_from + steady
            window[0], window[1] = measure_from, until
            cpu = psutil.Process(server.process.pid)
            cpu.cpu_percent(None)
            lists, list_errors = asyncio.run(admin_probes(server, headers, until))
            server_cpu = cpu.cpu_percent(None)
            rss = cpu.memory_info().rss
            states = workers_by_state(server, headers)
            placement = preview_and_place(server, headers, models / "llama-8b.gguf", 1000)
            done.set()
            results = [queue.get(timeout=300) for _ in workers]
            for process in workers:
                process.join(timeout=60)
            health.kill()
        except BaseException:
            console.print(f"[red]the run failed; the server log ends:[/]\n{(root / 'server.log').read_text()[-4000:]}")
            raise
        finally:
            server.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=30)
            server.process.kill()
    registrations = [s for r in results for s in r["registration_seconds"]]
    beats = [s for r in results for s in r["heartbeat_seconds"]]
    return {
        "workers": n,
        "database": database,
        "registered": len(registrations),
        "registration_p99_s": percentile(registrations, 0.99),
        "registration_seconds": max(r["registration_span"][1] for r in results)
        - min(r["registration_span"][0] for r in results),
        "ready_after_s": ready_after,
        "heartbeats": len(beats),
        "heartbeat_p50_s": percentile(beats, 0.5),
        "heartbeat_p99_s": percentile(beats, 0.99),
        "heartbeat_errors": sum(r["heartbeat_errors"] for r in results),
        "watch_errors": sum(r["watch_errors"] for r in results),
        "ready_at_end": states.get("ready", 0),
        "states_at_end": states,
        "list_p50_s": percentile(lists, 0.5),
        "list_p99_s": percentile(lists, 0.99),
        "list_errors": list_errors,
        "server_cpu_percent": server_cpu,
        "server_rss_mb": rss / 2**20,
        "sample_errors": [e for r in results for e in r["errors"]][:5],
        **placement,
    }


def _serve_health(port: int) -> None:
    async def main() -> None:
        await _health_server(port)
        await asyncio.Event().wait()

    asyncio.run(main())


def _open_files_for(workers: int) -> None:
    """Each simulated worker holds two sockets in its load process and two in the server (which
    inherits this limit): 10,000 workers need more than the usual 20,000. Root may raise the hard limit."""
    needed = 2 * workers + 1_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(needed, hard), max(needed, hard)))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        console.print(f"[yellow]open-files limit {soft} is below the {needed} this run needs (ulimit -n)[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="500,2000")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=2, help="load processes sharing the workers")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    _open_files_for(max(int(n) for n in args.workers.split(",")))
    with tempfile.TemporaryDirectory(prefix="gpufleet-scale-models-") as models_dir:
        models = Path(models_dir)
        write_model(models / "llama-8b.gguf", preset("llama-3.1-8b"), "q8_0", sparse=True)
        rows = [
            run(int(n), args.database, args.interval, args.steady, args.processes, models)
            for n in args.workers.split(",")
        ]
    table = Table(
        "workers",
        "db",
        "register all / p99",
        "ready after",
        "heartbeat p50 / p99",
        "ready at end",
        "list?limit=100 p50 / p99",
        "preview p99",
        "place 1,000",
        "server CPU",
        "RSS",
        "errors",
        title="Fleet scale (steady state)",
    )
    for row in rows:
        errors = row["heartbeat_errors"] + row["list_errors"] + row["watch_errors"] + row["workers"] - row["registered"]
        table.add_row(
            f"{row['workers']:,}",
            row["database"],
            f"{row['registration_seconds']:.0f} s / {row['registration_p99_s'] * 1000:.0f} ms",
            f"{row['ready_after_s']:.0f} s",
            f"{row['heartbeat_p50_s'] * 1000:.1f} / {row['heartbeat_p99_s'] * 1000:.1f} ms",
            f"{row['ready_at_end']:,} / {row['workers']:,}",
            f"{row['list_p50_s'] * 1000:.0f} / {row['list_p99_s'] * 1000:.0f} ms",
            f"{row['preview_p99'] * 1000:.0f} ms",
            f"{row['place_seconds']:.1f} s",
            f"{row['server_cpu_percent']:.0f} %",
            f"{row['server_rss_mb']:.0f} MB",
            str(errors),
        )
    console.print(table)
    targets = Table(
        "workers", "db", "heartbeat p99", "list p99", "server CPU", title="Against the targets (≤ 1.0 meets)"
    )
    for row in rows:
        targets.add_row(
            f"{row['workers']:,}",
            row["database"],
            f"{row['heartbeat_p99_s'] / TARGET_P99:.2f} × 100 ms",
            f"{row['list_p99_s'] / TARGET_P99:.2f} × 100 ms",
            f"{row['server_cpu_percent'] / TARGET_CPU:.2f} × 30 %",
        )
    console.print(targets)
    for row in rows:
        if row["sample_errors"]:
            console.print(f"{row['workers']} workers, first errors: {row['sample_errors']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
