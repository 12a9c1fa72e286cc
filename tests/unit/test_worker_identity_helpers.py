"""The pure parts of worker identity: device ids under a new name, and the worker API bearer."""

from __future__ import annotations

from gpufleet.common.worker_api_token import server_bearer, token_hash
from gpufleet.server.services.worker_rename import renamed_device


def test_only_the_renamed_workers_device_ids_change() -> None:
    assert renamed_device("nodea:cuda:1", "nodea", "nodeb") == "nodeb:cuda:1"
    assert renamed_device("nodea:cpu:0", "nodea", "n") == "n:cpu:0"
    # Another worker whose name starts with the same letters keeps its ids.
    assert renamed_device("nodea2:cuda:0", "nodea", "nodeb") == "nodea2:cuda:0"
    assert renamed_device("other:cuda:0", "nodea", "nodeb") == "other:cuda:0"


def test_the_stored_hash_alone_is_not_the_bearer() -> None:
    stored = token_hash("worker-token")
    assert len(stored) == 64 and "worker-token" not in stored
    bearer = server_bearer("cluster-token", stored)
    assert bearer not in (stored, "worker-token")
    assert bearer == server_bearer("cluster-token", stored)  # every server replica presents the same
    assert bearer != server_bearer("another-cluster-token", stored)
    assert bearer != server_bearer("cluster-token", token_hash("the-next-start's-token"))
