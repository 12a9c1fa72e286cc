"""The autoscaler's rules: one step at a time, down after idle_timeout without load, up after
requests waited SCALE_UP_AFTER, with a cool-down, never outside the bounds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gpufleet.schemas.model_events import ModelEventKind
from gpufleet.server.services.autoscale_rules import COOL_DOWN, SCALE_UP_AFTER, Deployment, decide

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# An on-demand deployment with one instance running, idle_timeout 60, last busy 10 s ago.
BASE = Deployment(
    model_id=1,
    replicas=1,
    min_replicas=0,
    max_replicas=2,
    idle_timeout=60,
    running=1,
    in_flight=0,
    queued=0,
    queued_for=None,
    busy_at=ago(10),
    last_request_at=ago(10),
    scaled_at=ago(100),
    updated_at=ago(1000),
)

CASES = [
    # (name, changes, expected (replicas, kind) or None)
    ("recently used: stays", {}, None),
    ("idle 61 s > 60: unloaded to 0", {"busy_at": ago(61), "last_request_at": ago(61)}, (0, ModelEventKind.UNLOAD)),
    (
        "idle, but a request is in flight (a long generation): stays",
        {"busy_at": ago(61), "last_request_at": ago(61), "in_flight": 1},
        None,
    ),
    (
        "idle, but scaled 30 s ago (< 60): stays",
        {"busy_at": ago(61), "last_request_at": ago(61), "scaled_at": ago(30)},
        None,
    ),
    (
        "idle, but changed by hand 30 s ago: stays",
        {"busy_at": ago(61), "last_request_at": ago(61), "updated_at": ago(30)},
        None,
    ),
    (
        "no idle_timeout: never unloaded",
        {"busy_at": ago(6000), "last_request_at": ago(6000), "idle_timeout": None},
        None,
    ),
    ("at min_replicas 1: never below", {"busy_at": ago(600), "last_request_at": ago(600), "min_replicas": 1}, None),
    (
        "never called, loaded by hand long ago: unloaded",
        {"busy_at": None, "last_request_at": None, "scaled_at": None},
        (0, ModelEventKind.UNLOAD),
    ),
    (
        "2 replicas, 1 carried the load for 61 s: down to 1",
        {"replicas": 2, "running": 2, "busy_at": ago(61)},
        (1, ModelEventKind.SCALE_DOWN),
    ),
    (
        "requests waited 4 s > 3 on 1 running: up to 2",
        {"queued": 3, "queued_for": SCALE_UP_AFTER + 1, "in_flight": 1},
        (2, ModelEventKind.SCALE_UP),
    ),
    ("waited only 2 s: not yet", {"queued": 3, "queued_for": SCALE_UP_AFTER - 1}, None),
    ("at max_replicas: never above", {"queued": 3, "queued_for": 10, "max_replicas": 1}, None),
    (
        "the last step 5 s ago (< cool-down 10): not yet",
        {"queued": 3, "queued_for": 10, "scaled_at": ago(COOL_DOWN / 2)},
        None,
    ),
    (
        "an instance is still loading: it will take them",
        {"queued": 3, "queued_for": 10, "replicas": 2, "running": 1, "max_replicas": 3},
        None,
    ),
    (
        "nothing loaded: the gateway's request loads it, not the autoscaler",
        {"queued": 3, "queued_for": 10, "replicas": 0, "running": 0},
        None,
    ),
]


@pytest.mark.parametrize(("name", "changes", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(name: str, changes: dict[str, object], expected: tuple[int, ModelEventKind] | None) -> None:
    step = decide(replace(BASE, **changes), NOW)  # type: ignore[arg-type]
    assert (None if step is None else (step.replicas, step.kind)) == expected
    if step is not None:
        assert step.why  # every step says why, in its event
