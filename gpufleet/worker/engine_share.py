"""What a new engine on this worker must leave to the others: their ports and a share of the cores.

Pure functions of the instances the server wants (``Supervisor.desired``) and this worker's id, so
the supervisor's planning reads the same picture for every engine it starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil

from gpufleet.schemas.instances import InstancePublic
from gpufleet.schemas.states import InstanceState as S

# Instances whose engine runs, or is on its way, on their worker.
ENGINE_STATES = (S.SCHEDULED, S.DOWNLOADING, S.STARTING, S.RUNNING, S.UNREACHABLE, S.ERROR)


def uses_cpu(instance: InstancePublic) -> bool:
    """Whether the instance's main engine computes on its worker's CPU (a CPU or GPU+CPU placement)."""
    return any(":cpu:" in d for d in instance.device_ids)


def ports_of_others(desired: Iterable[InstancePublic], worker_id: int | None, instance_id: int) -> set[int]:
    """The engine ports the server lists for this worker's other instances: never given to a new engine."""
    return {i.port for i in desired if i.id != instance_id and i.worker_id == worker_id and i.port is not None}


def cpu_share(desired: Iterable[InstancePublic], worker_id: int | None) -> int:
    """Threads for a CPU engine: the cores shared among the CPU engines this worker is asked to run
    (memory decides how many fit; this keeps them from each taking every core). At least 1."""
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    mine = [i for i in desired if i.state in ENGINE_STATES]
    engines = sum(1 for i in mine if i.worker_id == worker_id and uses_cpu(i))
    parts = sum(
        1 for i in mine for p in i.subordinates if p.worker_id == worker_id and all(":cpu:" in d for d in p.device_ids)
    )
    return max(1, cores // max(1, engines + parts))
