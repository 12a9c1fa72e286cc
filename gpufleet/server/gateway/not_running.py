"""The ``/v1`` answer when a deployment has no running instance (503 ``model_not_running``), per caller.

An instance's ``state_message`` is written for administrators: it names files on the server and
workers, worker names and addresses, allowed directories, engine output. Plain users (role
``user``, by session or API key) are told only what they can act on: which states the replicas
are in, and to ask an administrator. Admins get each instance's state and the first line of its
message, as ``GET /api/model-instances`` shows it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gpufleet.schemas.states import InstanceState
from gpufleet.server.principal import Principal, PrincipalKind

# How a plain user is told about an instance's state: what it means for them, nothing about where.
PLAIN_WORDS = {
    InstanceState.PENDING.value: "waiting to be placed",
    InstanceState.SCHEDULED.value: "starting",
    InstanceState.DOWNLOADING.value: "downloading the model",
    InstanceState.STARTING.value: "starting",
    InstanceState.ERROR.value: "failed to start",
    InstanceState.UNREACHABLE.value: "unreachable",
    InstanceState.STOPPING.value: "stopping",
}


# Why a pending instance waits, for callers who may not read its message: (phrase in the message,
# what it means for them). The first that matches wins; none of them names a worker, address or path.
PLAIN_REASONS = (
    ("evicting", "other models are being unloaded to make room for it"),
    ("waiting for stopping instances", "memory is being freed for it"),
    ("is not evicted for a lower priority", "models of higher priority hold the memory it needs"),
    ("has requests in flight", "the models holding the memory it needs are busy"),
    ("has just received a request", "the models holding the memory it needs are busy"),
    ("insufficient", "no worker has enough free memory for it now"),
    ("not ready", "no worker is ready to take it now"),
    ("no workers have joined", "no worker has joined the cluster yet"),
)


def plain_reason(message: str | None) -> str | None:
    """What a pending instance's message means for a caller who may not read it (None: unknown)."""
    if not message:
        return None
    return next((meaning for phrase, meaning in PLAIN_REASONS if phrase in message), None)


@dataclass(frozen=True)
class InstanceStatus:
    name: str
    state: str
    message: str | None


def not_running_message(principal: Principal, model: str, instances: list[InstanceStatus]) -> str:
    if not instances:
        return f"model {model!r} has no instances (replicas is 0); an administrator can scale it up to serve it"
    if principal.kind == PrincipalKind.ADMIN:
        states = "; ".join(f"{i.name} is {i.state}" + (f": {gist(i.message)}" if i.message else "") for i in instances)
        return f"model {model!r} has no running instance yet: {states}"
    counts = Counter(PLAIN_WORDS.get(i.state, "not running") for i in instances)
    states = ", ".join(f"{n} {words}" for words, n in counts.items())
    reasons = sorted(
        {why for i in instances if i.state == InstanceState.PENDING.value and (why := plain_reason(i.message))}
    )
    if reasons:
        states += ": " + "; ".join(reasons)
    return (
        f"model {model!r} has no running instance yet ({states}); try again later, or ask an administrator if it lasts"
    )


def gist(message: str, limit: int = 240) -> str:
    """The first line of an instance's message, shortened: admins read the rest in the instance's
    ``state_message`` and logs."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
