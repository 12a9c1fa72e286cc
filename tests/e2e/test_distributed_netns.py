"""Distributed inference across two hosts: Linux network namespaces, each with its own address.

Host A runs the server and the main worker, host B a second worker; a model placed over the CPUs
of both really generates tokens, and A's engine log shows layers on both. Cutting B's link makes
the instance ``unreachable`` with the reason; when the link comes back, the instance is
``running`` again (the same engine: nothing was lost but the link).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from testkit.synthetic import preset, write_model
from tests.support.engine_cluster import engine_headers
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.netns import TwoHosts, two_hosts, unavailable_reason
from tests.support.processes import GpufleetProcess
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

SERVER_PORT, WORKER_A_PORT, WORKER_B_PORT = 18080, 18081, 18082
HEARTBEAT = 1.0


class Hosts:
    def __init__(self, net: TwoHosts, root: Path, llama_server: Path) -> None:
        self.net = net
        self.root = root
        self.models = root / "models"
        write_model(self.models / "llama-tiny.gguf", preset("llama-tiny"))
        self.url = f"http://{net.a_from_test}:{SERVER_PORT}"
        common = ["--heartbeat-interval", str(HEARTBEAT), "--llama-server-path", str(llama_server)]
        self.a = GpufleetProcess(
            [
                *("--host", "0.0.0.0", "--port", str(SERVER_PORT), "--worker-port", str(WORKER_A_PORT)),
                *("--worker-ip", net.a_ip, "--worker-name", "a", "--data-dir", str(root / "a")),
                *("--bootstrap-password", ADMIN_PASSWORD, "--allowed-model-dirs", str(self.models), *common),
            ],
            root / "a.log",
            prefix=net.exec_prefix(net.a),
        ).start()
        self.a.wait_http(f"{self.url}/healthz")
        token = (root / "a" / "token").read_text().strip()
        self.b = GpufleetProcess(
            [
                *("--server-url", f"http://{net.a_ip}:{SERVER_PORT}", "--token", token),
                *("--host", net.b_ip, "--worker-port", str(WORKER_B_PORT), "--worker-name", "b"),
                *("--data-dir", str(root / "b"), *common),
                # Both workers report this one host's memory; B keeps 4 GiB more for itself, so A has
                # the most free memory and is the main worker (the gateway on A reaches its engine
                # after the link to B is cut). Without it the choice is a heartbeat's coin toss.
                *("--system-reserved", '{"ram": 6}'),
            ],
            root / "b.log",
            prefix=net.exec_prefix(net.b),
        ).start()
        login = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, trust_env=False
        )
        self.admin = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {login.json()['access_token']}"}, trust_env=False
        )

    def logs(self) -> str:
        return f"--- A ---\n{self.a.output()[-3000:]}\n--- B ---\n{self.b.output()[-3000:]}"

    def until(self, probe: Any, what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {last}\n{self.logs()}")

    def instance(self, model_id: int) -> dict[str, Any] | None:
        listed = self.admin.get("/api/model-instances", params={"model_id": model_id}).json()
        return listed[0] if listed else None

    def chat(self) -> httpx.Response:
        """Through the gateway: the engine listens on A's advertised address only, which the test's
        network does not reach (see ``test_..._generates_and_survives_a_cut_link``)."""
        return self.admin.post(
            "/v1/chat/completions",
            json={"model": "tiny-2hosts", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            timeout=60,
        )


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    with two_hosts() as net:
        running = Hosts(net, tmp_path, llama_server)
        try:
            yield running
        finally:
            running.admin.close()
            for process in (running.b, running.a):
                process.kill()


def test_a_model_over_two_hosts_generates_and_survives_a_cut_link(hosts: Hosts) -> None:
    def both_ready() -> list[dict[str, Any]] | None:
        listed: list[dict[str, Any]] = hosts.admin.get("/api/workers").json()
        return listed if len(listed) == 2 and all(w["state"] == "ready" for w in listed) else None

    workers = hosts.until(both_ready, "workers a and b to be ready")
    assert {w["name"]: w["ip"] for w in workers} == {"a": hosts.net.a_ip, "b": hosts.net.b_ip}
    created = hosts.admin.post(
        "/api/models",
        json={
            "name": "tiny-2hosts",
            "source": "local_path",
            "local_path": str(hosts.models / "llama-tiny.gguf"),
            "gpu_selector": {"device_ids": ["a:cpu:0", "b:cpu:0"]},
        },
    )
    assert created.status_code == 201, created.text
    model_id = created.json()["id"]
    running = hosts.until(
        lambda: (i := hosts.instance(model_id)) and i["state"] == "running" and i, "the instance to run"
    )
    assert running["worker_name"] == "a"
    [part] = running["subordinates"]
    assert part["worker_name"] == "b" and part["rpc_host"] == hosts.net.b_ip
    endpoint = f"{hosts.net.b_ip}:{part['rpc_port']}"
    command = psutil.Process(running["pid"]).cmdline()
    assert command[command.index("--rpc") + 1] == endpoint

    # the engine listens on A's advertised address (a_ip), not on A's other interface
    with pytest.raises(httpx.ConnectError):
        httpx.post(
            f"http://{hosts.net.a_from_test}:{running['port']}/v1/chat/completions",
            json={"model": "tiny-2hosts", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            headers=engine_headers(running["pid"]),
            timeout=10,
            trust_env=False,
        )
    answer = hosts.chat()
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] >= 1
    log = (hosts.root / "a" / "logs" / "instances" / f"{running['name']}.log").read_text()
    # load_tensors reports a model buffer on each device holding layers: A's CPU and B over RPC
    assert f"RPC0[{endpoint}] model buffer size" in log, log[-4000:]
    assert "CPU_Mapped model buffer size" in log or "CPU model buffer size" in log, log[-4000:]

    hosts.net.cut()
    lost = hosts.until(
        lambda: (i := hosts.instance(model_id)) and i["state"] == "unreachable" and i,
        "the instance to become unreachable",
        timeout=3 * HEARTBEAT + 15,
    )
    assert "b" in lost["state_message"] and "heartbeat" in lost["state_message"], lost["state_message"]
    assert lost["subordinates"][0]["message"]

    hosts.net.mend()
    back = hosts.until(
        lambda: (i := hosts.instance(model_id)) and i["state"] == "running" and i,
        "the instance to run again",
        timeout=90,
    )
    assert back["pid"] == running["pid"] and back["subordinates"][0]["message"] is None
    again = hosts.chat()
    assert again.status_code == 200, again.text
