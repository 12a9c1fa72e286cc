"""Renaming a worker in place: its id, devices and instances stay; every stored name follows.

A worker's name is part of more than its row: device ids are ``<worker name>:<type>:<index>``,
and instances record the worker's name, the device ids they use and their claim per device id
(their subordinates' too, for an instance this worker lends devices to), and the workers they
avoid (``placement_backoff``, keyed by name). A rename rewrites all of these in the registering
transaction, so the running engines, the claims the scheduler counts and the device listing stay
the same machine under its new name. Device rows keep their (worker, type, index), which is
unique (``uq_devices_worker_type_index``): they change id in place rather than being dropped and
added again, which would insert the new rows before deleting the old and violate it.

Not rewritten: a deployment's ``gpu_selector`` (explicit device ids typed by an admin) — it is
part of the deployment's spec, and changing it would roll its instances; the admin edits it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.resources import device_id
from gpufleet.db.tables import ModelInstance, Worker
from gpufleet.server.services import instances as instance_service


def renamed_device(identifier: str, old: str, new: str) -> str:
    """``old:cuda:0`` → ``new:cuda:0``; an id of another worker is returned unchanged."""
    return new + identifier[len(old) :] if identifier.startswith(old + ":") else identifier


def _renamed_claim(claim: Mapping[str, Any] | None, old: str, new: str) -> dict[str, Any] | None:
    if claim is None:
        return None
    vram = {renamed_device(d, old, new): v for d, v in (claim.get("vram") or {}).items()}
    return {**claim, "vram": vram} if "vram" in claim else dict(claim)


def rename_device_rows(worker: Worker) -> None:
    """Give each device row of ``worker`` the id its (type, index) has under ``worker.name``."""
    for row in worker.devices:
        row.id = device_id(worker.name, row.type, row.index)


async def rename_placements(session: AsyncSession, worker_id: int, old: str, new: str) -> None:
    """Rewrite ``old`` to ``new`` in every instance placed on, lending from or avoiding the worker.

    Each changed instance is published (the UI and the worker's watch see the new names); its
    state and version are untouched — nothing about where it runs changed, only what that is called.
    """
    rows = (
        (
            await session.execute(
                select(ModelInstance).where(
                    or_(
                        ModelInstance.worker_id == worker_id,
                        # a superset (the name inside any JSON text); each row is checked exactly below
                        cast(ModelInstance.subordinates, Text).contains(old),
                        cast(ModelInstance.placement_backoff, Text).contains(old),
                    )
                )
            )
        )
        .scalars()
        .all()
    )
    for row in rows:
        before = (row.worker_name, row.device_ids, row.claim, row.subordinates, row.placement_backoff)
        if row.worker_id == worker_id:
            row.worker_name = new
            row.device_ids = [renamed_device(d, old, new) for d in row.device_ids or []]
            row.claim = _renamed_claim(row.claim, old, new)
        row.subordinates = [_renamed_part(part, worker_id, old, new) for part in row.subordinates or []]
        if row.placement_backoff and old in row.placement_backoff:
            row.placement_backoff = {(new if k == old else k): v for k, v in row.placement_backoff.items()}
        if before != (row.worker_name, row.device_ids, row.claim, row.subordinates, row.placement_backoff):
            instance_service.publish(session, row)


def _renamed_part(part: Mapping[str, Any], worker_id: int, old: str, new: str) -> dict[str, Any]:
    if part.get("worker_id") != worker_id:
        return dict(part)
    return {
        **part,
        "worker_name": new,
        "device_ids": [renamed_device(d, old, new) for d in part.get("device_ids") or []],
        "claim": _renamed_claim(part.get("claim"), old, new) or {},
    }
