"""Run the real llama-server (and ggml-rpc-server devices) on a model and record what it allocated.

For one run: start ``rpc`` local ggml-rpc-server processes (each is one device), start
llama-server with the given arguments, wait until it serves, reset the processes' peak RSS,
send one request (a micro-batch, or the whole context), then read:

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
class ProcessMemory:
    peak_rss: int  # VmHWM
    model_rss: int  # resident pages of the mapped model file (page cache, reclaimable)


@dataclass
class Measurement:
    host: ProcessMemory
    devices: list[ProcessMemory]  # one per rpc-server, in device order
    buffers: list[Buffer] = field(default_factory=list)
    log_tail: str = ""

    def reported(self, device: str) -> dict[str, int]:
        return by_kind(self.buffers, device)

    def measured(self, device: str, baseline: int) -> int:
        """What the process needs: the larger of what it touched and what llama.cpp allocated.

        - touched: peak resident memory; for the host, the model file's page cache is replaced by
          the part llama.cpp keeps mapped for the CPU (pages read only to upload layers elsewhere
          can be dropped by the kernel);
        - allocated: llama.cpp's reported buffers plus the process's fixed cost (``baseline``,
          measured on a tiny model). Buffers count in full: KV cells and compute scratch not
          touched yet will be once the context fills.
        """
        allocated = sum(self.reported(device).values()) + baseline
        if device == "host":
            mapped = sum(b.size for b in self.buffers if b.device == "host" and b.mapped)
            touched = self.host.peak_rss - self.host.model_rss + mapped
        else:
            touched = self.devices[int(device.removeprefix("rpc"))].peak_rss
        return max(touched, allocated)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RunFailed(f"no {key} for pid {pid}")


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (``clear_refs`` 5, Linux ≥ 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def process_memory(pid: int, model: Path) -> ProcessMemory:
    model_path = str(model.resolve())
    model_rss = 0
    current = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
            current = head[5] if len(head) > 5 else ""
        elif head[0] == "Rss:" and current == model_path:
            model_rss += int(head[1]) * 1024
    return ProcessMemory(peak_rss=_status(pid, "VmHWM"), model_rss=model_rss)


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


def _text_of(base: str, n_tokens: int) -> str:
    """A text that tokenizes to about ``n_tokens`` tokens with this model's vocabulary."""
    sample = " ".join(["word"] * 64)
    counted = httpx.post(f"{base}/tokenize", json={"content": sample}, timeout=60).json()["tokens"]
    per_word = max(1.0, len(counted) / 64)
    return " ".join(["word"] * max(1, int(n_tokens / per_word)))


def _request(port: int, kind: str, n_tokens: int) -> None:
    base = f"http://127.0.0.1:{port}"
    if kind == "llm":
        body = {
            "prompt": [10 + (i % 200) for i in range(n_tokens)],
            "n_predict": 2,
            "temperature": 0,
            "cache_prompt": False,
        }
        response = httpx.post(f"{base}/completion", json=body, timeout=900)
    elif kind == "embedding":
        response = httpx.post(f"{base}/v1/embeddings", json={"input": _text_of(base, n_tokens)}, timeout=900)
    else:
        response = httpx.post(
            f"{base}/v1/rerank",
            json={"query": "a question", "documents": [_text_of(base, n_tokens - 16), "another short document"]},
            timeout=900,
        )
    if response.status_code != 200:
        raise RunFailed(f"{kind} request failed: HTTP {response.status_code} {response.text[:300]}")


def run(
    llama_server: Path,
    rpc_server: Path,
    model: Path,
    args: list[str],
    *,
    rpc: int = 0,
    kind: str = "llm",
    prompt_tokens: int = 480,
    timeout: float = 600,
) -> Measurement:
    rpc_processes: list[subprocess.Popen[bytes]] = []
    process: subprocess.Popen[str] | None = None
    lines: list[str] = []
    try:
        endpoints = []
        for _ in range(rpc):
            port = free_port()
            rpc_processes.append(
                subprocess.Popen(
                    [str(rpc_server), "-H", "127.0.0.1", "-p", str(port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            endpoints.append(f"127.0.0.1:{port}")
        if endpoints:
            time.sleep(0.5)
        port = free_port()
        command = [
            str(llama_server),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-lv",
            "4",
            "--threads",
            "2",
            *args,
        ]
        if endpoints:
            command += ["--rpc", ",".join(endpoints)]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            encoding="utf-8",
            errors="replace",
        )
        reader = _LineCollector(process, lines)
        reader.start()
        _wait_ready(port, process, lines, timeout)
        # Measure serving, not loading: loading reads the file through the page cache and stages
        # tensors on their way to RPC devices, transients the kernel or the process give back.
        for pid in [process.pid, *(p.pid for p in rpc_processes)]:
            reset_peak(pid)
        _request(port, kind, prompt_tokens)
        time.sleep(0.2)
        measurement = Measurement(
            host=process_memory(process.pid, model),
            devices=[process_memory(p.pid, model) for p in rpc_processes],
            buffers=parse_buffers(lines, endpoints),
        )
        measurement.log_tail = "".join(lines[-5:])
        return measurement
    finally:
        if process is not None:
            process.kill()
            process.wait()
        for rpc_process in rpc_processes:
            rpc_process.kill()
            rpc_process.wait()


@dataclass(frozen=True)
class Buffer:
    device: str  # host | rpc0 | rpc1 ...
    name: str  # llama.cpp's buffer type name, e.g. CPU_Mapped, CPU, RPC0[127.0.0.1:5000]
    kind: str  # model | KV | compute | output
    size: int

    @property
    def mapped(self) -> bool:
        """A view of the mmapped model file, not an allocation of its own."""
        return "Mapped" in self.name


def parse_buffers(lines: list[str], endpoints: list[str]) -> list[Buffer]:
    names = {endpoint: f"rpc{i}" for i, endpoint in enumerate(endpoints)}
    result = []
    for line in lines:
        match = BUFFER_LINE.search(line)
        if not match:
            continue
        rpc = RPC_DEVICE.search(match.group("device"))
        device = names.get(rpc.group("endpoint"), "rpc?") if rpc else "host"
        result.append(
            Buffer(device, match.group("device"), match.group("kind"), round(float(match.group("mib")) * MiB))
        )
    return result


def by_kind(buffers: list[Buffer], device: str) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for buffer in buffers:
        if buffer.device == device:
            kinds[buffer.kind] = kinds.get(buffer.kind, 0) + buffer.size
    return kinds


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
