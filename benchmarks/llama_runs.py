"""Run the real llama-server (and ggml-rpc-server devices) on a model and record what it allocated.

For one run: start ``rpc`` local ggml-rpc-server processes (each is one device), start
llama-server with the given arguments, wait until it serves, send one request whose prompt
fills a whole micro-batch (so every compute buffer page is really touched), then read:

- the buffer sizes llama.cpp logs per device (model, KV, compute, output);
- the peak resident memory (VmHWM) of llama-server and of every rpc-server.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BUFFER_LINE = re.compile(r"(?P<device>\S+)\s+(?P<kind>model|KV|compute|output) buffer size =\s+(?P<mib>[\d.]+) MiB")
RPC_DEVICE = re.compile(r"RPC\d*\[(?P<endpoint>[\d.:]+)\]")
MiB = 1024 * 1024


class RunFailed(RuntimeError):
    pass


@dataclass
class Measurement:
    host_peak: int  # llama-server VmHWM, bytes
    device_peaks: list[int]  # each rpc-server's VmHWM, in device order
    buffers: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> kind -> bytes (llama.cpp's log)
    log_tail: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RunFailed(f"no VmHWM for pid {pid}")


def _wait_ready(port: int, process: subprocess.Popen[str], lines: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunFailed("llama-server exited:\n" + "".join(lines[-30:]))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RunFailed("llama-server did not become healthy:\n" + "".join(lines[-30:]))


def _request(port: int, kind: str, n_tokens: int) -> None:
    base = f"http://127.0.0.1:{port}"
    if kind == "llm":
        body = {"prompt": [10 + (i % 200) for i in range(n_tokens)], "n_predict": 2, "temperature": 0,
                "cache_prompt": False}
        response = httpx.post(f"{base}/completion", json=body, timeout=600)
    elif kind == "embedding":
        response = httpx.post(f"{base}/v1/embeddings", json={"input": " ".join(["word"] * n_tokens)}, timeout=600)
    else:
        response = httpx.post(f"{base}/v1/rerank", json={"query": "a question", "documents": [
            " ".join(["word"] * (n_tokens // 2)), "another short document"]}, timeout=600)
    if response.status_code != 200:
        raise RunFailed(f"{kind} request failed: HTTP {response.status_code} {response.text[:300]}")


def run(llama_server: Path, rpc_server: Path, model: Path, args: list[str], *, rpc: int = 0, kind: str = "llm",
        prompt_tokens: int = 480, timeout: float = 600) -> Measurement:
    rpc_processes: list[subprocess.Popen[bytes]] = []
    process: subprocess.Popen[str] | None = None
    lines: list[str] = []
    try:
        endpoints = []
        for _ in range(rpc):
            port = free_port()
            rpc_processes.append(subprocess.Popen([str(rpc_server), "-H", "127.0.0.1", "-p", str(port)],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            endpoints.append(f"127.0.0.1:{port}")
        if endpoints:
            time.sleep(0.5)
        port = free_port()
        command = [str(llama_server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-lv", "4",
                   "--threads", "2", *args]
        if endpoints:
            command += ["--rpc", ",".join(endpoints)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        reader = _LineCollector(process, lines)
        reader.start()
        _wait_ready(port, process, lines, timeout)
        _request(port, kind, prompt_tokens)
        time.sleep(0.2)
        measurement = Measurement(host_peak=peak_rss(process.pid),
                                  device_peaks=[peak_rss(p.pid) for p in rpc_processes])
        measurement.buffers = parse_buffers(lines, endpoints)
        measurement.log_tail = "".join(lines[-5:])
        return measurement
    finally:
        if process is not None:
            process.kill()
            process.wait()
        for rpc_process in rpc_processes:
            rpc_process.kill()
            rpc_process.wait()


def parse_buffers(lines: list[str], endpoints: list[str]) -> dict[str, dict[str, int]]:
    """Buffers per device: ``host`` for CPU buffers, ``rpc0``… in endpoint order."""
    names = {endpoint: f"rpc{i}" for i, endpoint in enumerate(endpoints)}
    result: dict[str, dict[str, int]] = {}
    for line in lines:
        match = BUFFER_LINE.search(line)
        if not match:
            continue
        rpc = RPC_DEVICE.search(match.group("device"))
        device = names.get(rpc.group("endpoint"), "rpc?") if rpc else "host"
        kinds = result.setdefault(device, {})
        kinds[match.group("kind")] = kinds.get(match.group("kind"), 0) + round(float(match.group("mib")) * MiB)
    return result


class _LineCollector:
    """Drains the server's output in a thread so its pipe never fills."""

    def __init__(self, process: subprocess.Popen[str], lines: list[str]) -> None:
        import threading

        self.thread = threading.Thread(target=self._drain, args=(process, lines), daemon=True)

    def start(self) -> None:
        self.thread.start()

    @staticmethod
    def _drain(process: subprocess.Popen[str], lines: list[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
