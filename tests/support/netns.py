"""Two Linux network namespaces joined by a veth pair, and a link from this namespace to the first.

::

    this namespace (the test)        host A (namespace)              host B (namespace)
      gfr-… 10.213.1.1/24 ──────── 10.213.1.2/24 gfa1-…
                                     gfa0-… 10.213.0.1/24 ─────── 10.213.0.2/24 gfb0-…

The test reaches the services of A through its own link; B is reachable from A only, as a second
machine on A's network would be. ``cut()``/``mend()`` take B's link down and up. Everything is
removed at exit (deleting a namespace deletes its veth ends and their peers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

SUBNET_AB = "10.213.0"
SUBNET_TEST = "10.213.1"


class NetnsUnavailable(RuntimeError):
    pass


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass(frozen=True)
class TwoHosts:
    a: str  # namespace names
    b: str
    b_link: str
    a_ip: str = f"{SUBNET_AB}.1"
    b_ip: str = f"{SUBNET_AB}.2"
    a_from_test: str = f"{SUBNET_TEST}.2"

    def exec_prefix(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def cut(self) -> None:
        _ip("-n", self.b, "link", "set", self.b_link, "down")

    def mend(self) -> None:
        _ip("-n", self.b, "link", "set", self.b_link, "up")


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    result = subprocess.run(["ip", "route"], capture_output=True, text=True, check=False)
    if "10.213." in result.stdout:
        return "10.213.0.0/16 is already routed here"
    return None


def _kill_namespace_processes(namespace: str) -> None:
    result = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
    for pid in result.stdout.split():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@contextmanager
def two_hosts() -> Iterator[TwoHosts]:
    tag = secrets.token_hex(3)
    a, b = f"gfa-{tag}", f"gfb-{tag}"
    hosts = TwoHosts(a, b, f"gfb0-{tag}")
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        for namespace in (a, b):
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("link", "add", f"gfa0-{tag}", "netns", a, "type", "veth", "peer", "name", hosts.b_link, "netns", b)
        _ip("-n", a, "addr", "add", f"{hosts.a_ip}/24", "dev", f"gfa0-{tag}")
        _ip("-n", b, "addr", "add", f"{hosts.b_ip}/24", "dev", hosts.b_link)
        _ip("-n", a, "link", "set", f"gfa0-{tag}", "up")
        _ip("-n", b, "link", "set", hosts.b_link, "up")
        _ip("link", "add", f"gfr-{tag}", "type", "veth", "peer", "name", f"gfa1-{tag}", "netns", a)
        _ip("addr", "add", f"{SUBNET_TEST}.1/24", "dev", f"gfr-{tag}")
        _ip("-n", a, "addr", "add", f"{hosts.a_from_test}/24", "dev", f"gfa1-{tag}")
        _ip("link", "set", f"gfr-{tag}", "up")
        _ip("-n", a, "link", "set", f"gfa1-{tag}", "up")
        yield hosts
    finally:
        for namespace in (a, b):
            _kill_namespace_processes(namespace)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", f"gfr-{tag}"], capture_output=True, check=False)
