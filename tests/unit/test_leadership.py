"""The leadership state machine (``server/leader.py``): two roles, two moves, tasks follow the role."""

from __future__ import annotations

import pytest

from gpufleet.server.leader import ALLOWED, Role, SingleServer


class Recorder:
    def __init__(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


def test_the_only_moves_are_to_lead_and_to_follow() -> None:
    assert {Role.FOLLOWER: {Role.LEADER}, Role.LEADER: {Role.FOLLOWER}} == ALLOWED


async def test_a_single_server_leads_from_the_start_and_its_tasks_run_only_while_it_leads() -> None:
    leadership = SingleServer()
    task = Recorder()
    leadership.register(task)
    assert not leadership.leader and not task.running
    await leadership.start()
    assert leadership.leader and task.running and leadership.fence is None  # SQLite: nothing to fence
    with pytest.raises(RuntimeError, match="cannot move from leader to leader"):
        leadership._move(Role.LEADER)
    await leadership.stop()
    assert not leadership.leader and not task.running
    await leadership.stop()  # stopping twice is harmless
