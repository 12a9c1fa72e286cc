"""When a bounded deployment gains or loses a replica: the autoscaler's rules, pure.

``decide(state, now)`` looks at one deployment with ``min_replicas``/``max_replicas`` and its load
on every server, and answers one step (±1 replica) or nothing:

- **Down** (to ``min_replicas`` at the lowest; to 0 is an *unload*): ``idle_timeout`` is set, no
  request is in flight or waiting anywhere, and for ``idle_timeout`` seconds the load has not needed
  every replica (``busy_at``: with one replica, no request at all) and gpufleet has not scaled it
  (``scaled_at``) nor has a person changed it (``updated_at``).
- **Up** (to ``max_replicas`` at the most): requests have waited in its line for ``SCALE_UP_AFTER``
  seconds without a break, every replica it has is running (none still loading, which would take
  them), and the last scaling is ``COOL_DOWN`` old. Whether the new instance fits is the caller's
  question (``fits``): it is asked only when the rest says up, since it costs a scheduler run.

Never both in one look, and each step waits for the one before it to settle, so it does not flap:
up needs ``COOL_DOWN`` after any step, down needs ``idle_timeout`` after any step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gpufleet.schemas.model_events import ModelEventKind

SCALE_UP_AFTER = 3.0  # seconds requests must have been waiting without a break
COOL_DOWN = 10.0  # seconds after a step before the next step up


@dataclass(frozen=True)
class Deployment:
    """What the rules read of one bounded deployment."""

    model_id: int
    replicas: int
    min_replicas: int
    max_replicas: int
    idle_timeout: int | None
    running: int  # instances running now
    in_flight: int  # requests being served, on all servers
    queued: int  # requests waiting, on all servers
    queued_for: float | None  # seconds requests have been waiting without a break (None: none waits)
    busy_at: datetime | None
    last_request_at: datetime | None
    scaled_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Step:
    replicas: int  # the new target
    kind: ModelEventKind
    why: str


def decide(d: Deployment, now: datetime) -> Step | None:
    down = _down(d, now)
    return down if down is not None else _up(d, now)


def _down(d: Deployment, now: datetime) -> Step | None:
    if d.idle_timeout is None or d.replicas <= d.min_replicas or d.in_flight or d.queued:
        return None
    # With one replica any request counts, up to its end (``last_request_at``); with more, only load
    # that needed them all (``busy_at``): requests that one replica fewer carries do not keep them.
    marks = (d.busy_at, d.scaled_at, d.updated_at, d.last_request_at if d.replicas == 1 else None)
    quiet_since = max(t for t in marks if t is not None)
    if now - quiet_since < timedelta(seconds=d.idle_timeout):
        return None
    if d.replicas == 1:
        return Step(0, ModelEventKind.UNLOAD, f"no request for {d.idle_timeout} s (idle_timeout)")
    return Step(
        d.replicas - 1,
        ModelEventKind.SCALE_DOWN,
        f"{d.replicas - 1} replica(s) carried the load for {d.idle_timeout} s (idle_timeout)",
    )


def _up(d: Deployment, now: datetime) -> Step | None:
    if d.replicas >= d.max_replicas or d.replicas < 1 or d.running < d.replicas:
        return None
    if d.queued_for is None or d.queued_for < SCALE_UP_AFTER:
        return None
    if d.scaled_at is not None and now - d.scaled_at < timedelta(seconds=COOL_DOWN):
        return None
    return Step(
        d.replicas + 1,
        ModelEventKind.SCALE_UP,
        f"{d.queued} request(s) waited {d.queued_for:.0f} s for a free slot on {d.running} running instance(s)",
    )
