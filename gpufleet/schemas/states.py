"""The state vocabularies shared by server, worker and clients.

The allowed instance transitions and the one function that performs them live
in ``gpufleet.server.lifecycle``; only the names live here so the worker and the
wire models can use them without importing server code.
"""

from __future__ import annotations

from enum import StrEnum


class WorkerState(StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"  # no heartbeat for 3 intervals (server clock), or shut down
    UNREACHABLE = "unreachable"  # heartbeats arrive, but the server cannot reach the worker's port
    MAINTENANCE = "maintenance"  # set by an admin: keeps running instances, gets nothing new


class InstanceState(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    DOWNLOADING = "downloading"
    STARTING = "starting"
    RUNNING = "running"
    ERROR = "error"
    UNREACHABLE = "unreachable"
    STOPPING = "stopping"
