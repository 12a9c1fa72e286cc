"""HTTPS: ``gpufleet start --ssl-keyfile --ssl-certfile`` serves the API, the web UI and /v1 over TLS.

Real processes and a CA made in the test (``tests.support.certificates``): a server only, a worker
that joins it with ``--server-ca``, one without it that is told what to give, the official ``openai``
client calling a tiny generated model through the gateway, the CLI with ``GPUFLEET_SERVER_CA``, and
a ``gpufleet start`` whose embedded worker joins its own HTTPS server though the certificate does not
list 127.0.0.1. Bad key or certificate files end ``start`` with one line naming the file.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest

from testkit.synthetic import preset, write_model
from tests.support.certificates import CertificateAuthority, ServerPair
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.processes import GpufleetProcess, ports
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Say something."}]


class Site:
    """Processes started by one test, all under ``root``; killed (engines too) at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = CertificateAuthority(root)
        self.port, self.worker_port = ports(2)
        self.url = f"https://127.0.0.1:{self.port}"
        self.processes: list[GpufleetProcess] = []

    def start(self, name: str, *args: str) -> GpufleetProcess:
        process = GpufleetProcess([*args, "--heartbeat-interval", "1"], self.root / f"{name}.log").start()
        self.processes.append(process)
        return process

    def start_server(self, pair: ServerPair, *extra: str) -> GpufleetProcess:
        return self.start(
            "server",
            *("--host", "127.0.0.1", "--port", str(self.port), "--worker-port", str(self.worker_port)),
            *("--data-dir", str(self.root / "server"), "--bootstrap-password", ADMIN_PASSWORD),
            *("--ssl-certfile", str(pair.certfile), "--ssl-keyfile", str(pair.keyfile)),
            *extra,
        )

    def admin(self, verify: ssl.SSLContext) -> httpx.Client:
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        token = httpx.post(f"{self.url}/api/auth/login", json=login, verify=verify, trust_env=False)
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        return httpx.Client(base_url=self.url, headers=headers, verify=verify, trust_env=False)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.kill()
        for engine in psutil.process_iter(["cmdline"]):  # engines name their model file under root
            if any(str(self.root) in part for part in engine.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):  # it ended meanwhile
                    engine.kill()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A fresh root per test."""
    running = Site(tmp_path)
    yield running
    running.close()


def until(check: Callable[[], Any], what: str, logs: Callable[[], str], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{logs()[-4000:]}")


def answers(url: str, verify: ssl.SSLContext) -> bool:
    try:
        return httpx.get(url, verify=verify, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def worker_in(admin: httpx.Client, name: str, state: str) -> dict[str, Any] | None:
    return next((w for w in admin.get("/api/workers").json() if w["name"] == name and w["state"] == state), None)


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "gpufleet", *args], capture_output=True, text=True, timeout=30, env={**clean, **env}
    )


@dataclass
class Joined:
    """A server only (``--disable-worker``) over HTTPS, and worker ``w1`` joined to it with ``--server-ca``."""

    site: Site
    admin: httpx.Client
    trusted: ssl.SSLContext
    models: Path
    engines: bool  # w1 has a llama-server

    def joining(self, name: str, *extra: str) -> GpufleetProcess:
        token = (self.site.root / "server" / "token").read_text().strip()
        return self.site.start(
            name,
            *("--server-url", self.site.url, "--token", token, "--host", "127.0.0.1", "--worker-name", name),
            *("--worker-port", str(ports(1)[0]), "--data-dir", str(self.site.root / name)),
            *extra,
        )


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Joined]:
    site = Site(tmp_path_factory.mktemp("tls"))
    models = site.root / "models"
    write_model(models / "llama-tiny.gguf", preset("llama-tiny"))
    try:
        server = site.start_server(site.ca.server("server"), "--disable-worker", "--allowed-model-dirs", str(models))
        trusted = ssl.create_default_context(cafile=str(site.ca.path))
        until(lambda: answers(f"{site.url}/healthz", trusted), "the server over HTTPS", server.output)
        llama_server = find_llama_server()
        engine = ["--llama-server-path", str(llama_server), "--allowed-model-dirs", str(models)] if llama_server else []
        with site.admin(trusted) as admin:
            running = Joined(site, admin, trusted, models, engines=llama_server is not None)
            worker = running.joining("w1", "--server-ca", str(site.ca.path), *engine)
            until(lambda: worker_in(admin, "w1", "ready"), "worker w1 ready", worker.output)
            yield running
    finally:
        site.close()


def test_only_https_is_served_and_certifi_alone_does_not_trust_it(joined: Joined) -> None:
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the HTTPS port gets no answer
        httpx.get(f"http://127.0.0.1:{joined.site.port}/healthz", timeout=5, trust_env=False)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # httpx's default CAs
        httpx.get(f"{joined.site.url}/healthz", timeout=5, trust_env=False)
    ui = joined.admin.get("/")
    assert ui.status_code == 200 and ui.headers["content-type"].startswith("text/html")
    assert joined.admin.get("/api/workers").status_code == 200


def test_a_worker_without_the_ca_is_told_to_give_it_and_does_not_join(joined: Joined) -> None:
    untrusting = joined.joining("untrusting")
    assert untrusting.wait_exit(30) == 1
    said = untrusting.output()
    assert "the server's certificate is not trusted" in said and "give the CA with --server-ca FILE" in said, said
    assert "Traceback" not in said
    assert all(w["name"] != "untrusting" for w in joined.admin.get("/api/workers").json())


def test_the_cli_trusts_gpufleet_server_ca(joined: Joined) -> None:
    key = joined.admin.post("/api/api-keys", json={"name": "tls-cli"}).json()["key"]
    listing = ["workers", "list", "--server", joined.site.url, "--api-key", key, "--json"]
    listed = cli(listing, {"GPUFLEET_SERVER_CA": str(joined.site.ca.path)})
    assert listed.returncode == 0 and '"w1"' in listed.stdout, listed.stderr
    refused = cli(listing, {})
    assert refused.returncode == 1, refused.stderr
    assert "certificate is not trusted" in refused.stderr and "GPUFLEET_SERVER_CA" in refused.stderr


def test_the_openai_client_is_answered_over_https(joined: Joined) -> None:
    if not joined.engines:
        pytest.skip(llama_server_missing_reason())
    admin = joined.admin
    body = {"name": "tls-chat", "source": "local_path", "local_path": str(joined.models / "llama-tiny.gguf")}
    created = admin.post("/api/models", json={**body, "cpu_offloading": True})
    assert created.status_code == 201, created.text
    instances = {"model_id": created.json()["id"]}
    until(
        lambda: [i for i in admin.get("/api/model-instances", params=instances).json() if i["state"] == "running"],
        "a running instance of tls-chat",
        lambda: "\n".join(p.output() for p in joined.site.processes),
        timeout=60,
    )
    key = admin.post("/api/api-keys", json={"name": "tls"}).json()["key"]
    gpt = openai.OpenAI(
        base_url=f"{joined.site.url}/v1",
        api_key=key,
        max_retries=0,
        http_client=httpx.Client(verify=joined.trusted, trust_env=False, timeout=60),
    )
    assert "tls-chat" in [m.id for m in gpt.models.list().data]
    answer = gpt.chat.completions.create(
        model="tls-chat", messages=HI, max_tokens=4, temperature=0, extra_body={"ignore_eos": True}
    )
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    admin.delete(f"/api/models/{created.json()['id']}")


def test_the_embedded_worker_joins_its_own_https_server(site: Site) -> None:
    """The certificate names only fleet.example.test: the embedded worker, on 127.0.0.1, trusts it pinned."""
    server = site.start_server(site.ca.server("public", dns=("fleet.example.test",), ips=()), "--worker-name", "main")
    any_name = ssl.create_default_context(cafile=str(site.ca.path))
    any_name.check_hostname = False  # this test's client reaches the server by address, not by its name
    until(lambda: answers(f"{site.url}/healthz", any_name), "the server over HTTPS", server.output)
    with site.admin(any_name) as admin:
        until(lambda: worker_in(admin, "main", "ready"), "the embedded worker ready", server.output)
    assert "https://127.0.0.1" in server.output()  # the banner


@pytest.mark.parametrize("wrong", ["certificate", "key"])
def test_a_bad_certificate_or_key_ends_start_with_one_line(site: Site, wrong: str) -> None:
    pair = site.ca.server("server")
    other = site.ca.server("other")
    junk = site.root / "junk.pem"
    junk.write_text("not PEM\n")
    given = ServerPair(junk, pair.keyfile) if wrong == "certificate" else ServerPair(pair.certfile, other.keyfile)
    server = site.start_server(given, "--disable-worker")
    assert server.wait_exit(30) == 1
    said = server.output()
    expected = (
        f"--ssl-certfile {junk}: no PEM certificate"
        if wrong == "certificate"
        else f"--ssl-keyfile {other.keyfile} is not the key of the certificate in {pair.certfile}"
    )
    assert expected in said and "Traceback" not in said, said
