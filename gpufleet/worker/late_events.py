"""Which instance events arrived late, so the worker ignores them.

A server relays another server's changes later than its own, so a worker's watch stream can carry
an instance event older than one already applied. An event is late when its ``version`` is lower
than the version the worker holds for that instance, or, for an instance deleted here, no newer
than the version it was deleted at. SQLite can reuse a deleted instance's id for a later instance,
whose versions start again: a deletion only counts for the same ``created_at``.
"""

from __future__ import annotations

from typing import Any

KEPT = 1024  # deletions remembered at most (the oldest go first)


class LateEvents:
    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self.deleted: dict[int, tuple[object, int]] = {}  # instance id -> (created_at, version at deletion)

    def is_late(self, instance_id: int, held_version: int | None, data: dict[str, Any]) -> bool:
        version = data.get("version")
        if not isinstance(version, int):
            return False  # no version, no order to keep
        if held_version is not None:
            return version < held_version
        deleted = self.deleted.get(instance_id)
        if deleted is None:
            return False
        created_at, deleted_version = deleted
        return data.get("created_at") == created_at and version <= deleted_version

    def deleted_at(self, instance_id: int, data: dict[str, Any]) -> None:
        """Remember that the instance was deleted at ``data``'s version."""
        version = data.get("version")
        if not isinstance(version, int):
            return
        self.deleted.pop(instance_id, None)
        self.deleted[instance_id] = (data.get("created_at"), version)
        while len(self.deleted) > self.kept:
            del self.deleted[next(iter(self.deleted))]

    def applied(self, instance_id: int) -> None:
        """A newer event of the instance was applied: its deletion no longer stands."""
        self.deleted.pop(instance_id, None)
