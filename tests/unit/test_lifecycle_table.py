"""The allowed-transition table, checked against the lifecycle a person expects."""

from __future__ import annotations

import pytest

from gpufleet.schemas.states import InstanceState
from gpufleet.server.lifecycle import ALLOWED_FROM, is_allowed

S = InstanceState


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.PENDING, S.SCHEDULED),
        (S.SCHEDULED, S.DOWNLOADING),
        (S.DOWNLOADING, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.SCHEDULED, S.STARTING),
        (S.RUNNING, S.ERROR),
        (S.ERROR, S.STARTING),
        (S.RUNNING, S.UNREACHABLE),
        (S.UNREACHABLE, S.RUNNING),
        (S.UNREACHABLE, S.PENDING),
        (S.RUNNING, S.STOPPING),
        (S.ERROR, S.PENDING),
        (S.RUNNING, S.PENDING),  # its worker was deleted
        (S.RUNNING, S.RUNNING),
    ],
)
def test_allowed(source: InstanceState, target: InstanceState) -> None:
    assert is_allowed(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.PENDING, S.RUNNING),
        (S.PENDING, S.STARTING),
        (S.STOPPING, S.RUNNING),
        (S.STOPPING, S.PENDING),
        (S.RUNNING, S.SCHEDULED),
        (S.RUNNING, S.DOWNLOADING),
        (S.PENDING, S.STOPPING),
    ],
)
def test_refused(source: InstanceState, target: InstanceState) -> None:
    assert not is_allowed(source, target)


def test_stopping_is_final() -> None:
    assert all(S.STOPPING not in sources for sources in ALLOWED_FROM.values())
    assert set(ALLOWED_FROM) == set(InstanceState)
