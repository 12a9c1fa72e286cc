"""Which gpufleet versions a worker and its server may run: the version-skew rule.

Rule: a worker may join a server of the same major version whose minor version is at most one
apart (``|worker.minor - server.minor| <= 1``). That lets an administrator upgrade a cluster one
minor release at a time, server first or workers first, without stopping it. For 0.x releases
the minor version is the compatibility unit too: the same rule, no exception.

Verdicts (``judge``):

- ``same``: same MAJOR.MINOR (the patch level never matters);
- ``one_minor``: accepted, but worth a warning on both sides: the next upgrade must close the gap;
- ``unknown``: a version that does not start with MAJOR.MINOR cannot be judged, so it is accepted
  (only hand-written clients send one: simulated workers of benchmarks and tests; every real
  worker sends ``gpufleet.__version__``);
- ``too_far``: refused; ``message`` says which side to upgrade, and to what. An older worker is
  told to upgrade itself (never to downgrade the server); a newer one to upgrade the server, or
  to run a version the server accepts.

Refusals are ``VersionSkew`` errors, HTTP 409 Conflict rather than 426 Upgrade Required: 426
(RFC 9110 §15.5.22) asks the client to switch the *connection's protocol* named in an ``Upgrade``
header, which a gpufleet release is not; 409 says the request conflicts with the state of the
server (the version it runs), and the worker treats every 4xx at registration but 401/404 as a
refusal no retry can fix.

Pure: no I/O, no clock; the caller passes both versions in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from gpufleet.common.errors import Conflict

_RELEASE = re.compile(r"^\s*v?(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class Release:
    """MAJOR.MINOR of a version: all the rule looks at."""

    major: int
    minor: int

    @classmethod
    def parse(cls, version: str) -> Release | None:
        """``"0.3.1"``, ``"1.2.0rc1"``, ``"0.1.0.dev3+g1234"`` → MAJOR.MINOR; anything else → None."""
        match = _RELEASE.match(version)
        return cls(int(match.group(1)), int(match.group(2))) if match else None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


class Skew(StrEnum):
    SAME = "same"
    ONE_MINOR = "one_minor"
    UNKNOWN = "unknown"
    TOO_FAR = "too_far"


@dataclass(frozen=True)
class Verdict:
    skew: Skew
    message: str  # for people: what differs (and, when refused, what to upgrade); "" when the same

    @property
    def accepted(self) -> bool:
        return self.skew != Skew.TOO_FAR


class VersionSkew(Conflict):
    """A worker's gpufleet is too far from its server's to join (HTTP 409); the message says what to upgrade."""

    code = "version_skew"


def _either(options: list[Release]) -> str:
    return " or ".join(str(option) for option in options)


def judge(worker_version: str, server_version: str) -> Verdict:
    """The verdict on a worker running ``worker_version`` joining a server running ``server_version``."""
    worker, server = Release.parse(worker_version), Release.parse(server_version)
    if worker is None or server is None:
        return Verdict(
            Skew.UNKNOWN,
            f"cannot tell whether worker gpufleet {worker_version!r} and server gpufleet {server_version!r} are "
            "compatible (not MAJOR.MINOR versions)",
        )
    if worker == server:
        return Verdict(Skew.SAME, "")
    if worker.major == server.major and abs(worker.minor - server.minor) <= 1:
        newer = "server" if server > worker else "worker"
        return Verdict(
            Skew.ONE_MINOR,
            f"worker gpufleet {worker_version} and server gpufleet {server_version} are one minor version apart "
            f"(supported while upgrading; the {newer} is newer): upgrade the other side to {max(worker, server)} "
            "before the next release",
        )
    head = f"worker gpufleet {worker_version} cannot join server gpufleet {server_version}"
    if worker > server:
        on_worker = [server, Release(server.major, server.minor + 1)]
        return Verdict(
            Skew.TOO_FAR,
            f"{head}: upgrade the server to {worker}, or run gpufleet {_either(on_worker)} on the worker",
        )
    upgrades = [Release(server.major, server.minor - 1)] if server.minor > 0 else []
    return Verdict(Skew.TOO_FAR, f"{head}: upgrade the worker to gpufleet {_either([*upgrades, server])}")


def check(worker_version: str, server_version: str) -> Verdict:
    """``judge``, raising ``VersionSkew`` for a refusal; the accepted verdict otherwise."""
    verdict = judge(worker_version, server_version)
    if not verdict.accepted:
        raise VersionSkew(verdict.message, field="status.gpufleet_version")
    return verdict
