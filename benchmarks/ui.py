"""Web UI weight and the dashboard's time to interactive with a 100-worker cluster.

- **Page weight**: the JS and CSS bytes the browser received to show the dashboard (gzip-encoded as
  gpufleet sends them, lazily loaded chunks included), and, for reference, the whole build's JS
  and CSS at gzip level 9.
- **Time to interactive**: a real headless Chromium (the system's, through Playwright) opens ``/``
  signed in, against a real ``gpufleet start --disable-worker`` holding 100 simulated workers with
  4 GPUs each (registered through the API with the cluster token); the clock runs from the
  navigation's start until the dashboard shows the last worker's GPUs (its name on the page). The
  median of ``--runs`` cold loads (a new browser context each time: nothing cached).

Both are compared, as ratios, with the targets of the web UI issue (500 KB gzip, 1.5 s on this
machine) and with a floor measured in the same run: the same navigation to a page that is only the
built ``index.html`` shell's own request (``/favicon.svg``), so the ratio shows what the app adds.

    .venv/bin/python -m benchmarks.ui --out benchmarks/results/ui.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.table import Table

from gpufleet.common.net import free_port
from gpufleet.common.units import GiB
from gpufleet.server.ui_assets import BUILT_DIR, built_assets

console = Console(highlight=False, width=160)
PASSWORD = "benchmark-password"
TARGET_BYTES = 500 * 1000
TARGET_SECONDS = 1.5
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def build_weight() -> dict[str, int]:
    """Gzipped bytes of every JS and CSS file of the build."""
    return {
        path.name: len(gzip.compress(path.read_bytes(), compresslevel=9))
        for path in sorted((BUILT_DIR / "assets").iterdir())
        if path.suffix in (".js", ".css")
    }


def registration(name: str, gpus: int) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {
            "index": i,
            "type": "cuda",
            "vendor": "nvidia",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total": 80 * GiB,
            "memory_used": 2 * GiB,
            "compute_capability": "9.0",
            "simulated": True,
            "utilization": 12.0,
            "temperature": 41.0,
        }
        for i in range(gpus)
    ]
    devices.append({"index": 0, "type": "cpu", "vendor": "amd", "name": "EPYC", "memory_total": 512 * GiB, "cores": 64})
    status = {
        "hostname": name,
        "os": "linux",
        "arch": "amd64",
        "cpu_cores": 64,
        "memory_total": 512 * GiB,
        "memory_used": 40 * GiB,
        "devices": devices,
        "gpufleet_version": "bench",
    }
    return {
        "name": name,
        "ip": "127.0.0.1",
        "port": 9,  # nothing listens: the probe marks them unreachable, which the page shows too
        "labels": {"rack": name[:3]},
        "system_reserved": {"ram": 2 * GiB, "vram": GiB},
        "status": status,
    }


def start_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gpufleet", "start", "--disable-worker", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(data), "--bootstrap-password", PASSWORD]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1, trust_env=False).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gpufleet did not start")


def measure(url: str, workers: int, runs: int) -> tuple[list[float], list[float], dict[str, int]]:
    """Times to interactive, the floor's times, and the JS/CSS bytes received (the first run's)."""
    last = f"w{workers - 1:03d}"
    app: list[float] = []
    floor: list[float] = []
    received: dict[str, int] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(runs):
            context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 900})
            assert context.request.post("/api/auth/login", data={"username": "admin", "password": PASSWORD}).ok
            page = context.new_page()
            loaded: list[Any] = []
            page.on("requestfinished", lambda request, into=loaded: into.append(request))
            page.goto("/favicon.svg")
            floor.append(page.evaluate("performance.getEntriesByType('navigation')[0].duration") / 1000)
            page.goto("/", wait_until="commit")
            page.wait_for_function(f"document.body.innerText.includes('{last}')", timeout=60_000)
            app.append(page.evaluate("performance.now()") / 1000)
            if not received:
                for request in loaded:
                    name = request.url.rsplit("/", 1)[-1]
                    if name.endswith((".js", ".css")):
                        received[name] = request.sizes()["responseBodySize"]
            context.close()
        browser.close()
    return app, floor, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--gpus", type=int, default=4, help="simulated GPUs per worker")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not built_assets().available:
        raise SystemExit("the web UI is not built: make ui")

    build = build_weight()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gpufleet-ui-bench-") as tmp:
        server = start_server(Path(tmp) / "data", port)
        url = f"http://127.0.0.1:{port}"
        try:
            token = (Path(tmp) / "data" / "token").read_text().strip()
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, trust_env=False) as client:
                for i in range(args.workers):
                    client.post("/api/workers/register", json=registration(f"w{i:03d}", args.gpus)).raise_for_status()
            app, floor, received = measure(url, args.workers, args.runs)
        finally:
            server.terminate()
            server.wait(timeout=30)

    total = sum(received.values())
    tti, bare = statistics.median(app), statistics.median(floor)
    table = Table("metric", "gpufleet", "target", "ratio to target", "floor (same run)", "ratio to floor")
    table.add_row(
        "dashboard JS+CSS received, gzip", f"{total / 1000:.0f} KB", "500 KB", f"{total / TARGET_BYTES:.2f}", "—", "—"
    )
    table.add_row("whole build JS+CSS, gzip -9", f"{sum(build.values()) / 1000:.0f} KB", "—", "—", "—", "—")
    table.add_row(
        f"dashboard interactive, {args.workers} workers × {args.gpus} GPUs (median of {args.runs})",
        f"{tti:.2f} s",
        "1.5 s",
        f"{tti / TARGET_SECONDS:.2f}",
        f"{bare * 1000:.0f} ms",
        f"{tti / bare:.0f}" if bare else "—",
    )
    console.print(table)
    result = {
        "dashboard_received_bytes": received,
        "dashboard_received_total": total,
        "build_gzip_bytes": build,
        "tti_seconds": app,
        "tti_median_seconds": tti,
        "floor_seconds": floor,
        "workers": args.workers,
        "gpus_per_worker": args.gpus,
        "targets": {"gzip_bytes": TARGET_BYTES, "tti_seconds": TARGET_SECONDS},
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
