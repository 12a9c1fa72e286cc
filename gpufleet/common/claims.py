"""What gpufleet instances have claimed on each device, summed from their placement claims.

A claim is ``{"ram": bytes, "vram": {device_id: bytes}, ...}``: ``ram`` is host
memory on the instance's worker (counted on that worker's CPU device), and
each subordinate of a distributed instance carries a claim of the same shape.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from gpufleet.schemas.devices import device_id


def add_claim(totals: dict[str, int], worker_name: str | None, claim: dict[str, Any] | None) -> None:
    if not claim:
        return
    if worker_name and claim.get("ram"):
        totals[device_id(worker_name, "cpu", 0)] += int(claim["ram"])
    for device, amount in (claim.get("vram") or {}).items():
        totals[device] += int(amount)


def claimed_by_device(instances: list[tuple[str | None, dict[str, Any] | None, list[Any]]]) -> dict[str, int]:
    """``instances``: (worker name, claim, subordinates) triples → bytes claimed per device id."""
    totals: dict[str, int] = defaultdict(int)
    for worker_name, claim, subordinates in instances:
        add_claim(totals, worker_name, claim)
        for subordinate in subordinates or []:
            add_claim(totals, subordinate.get("worker_name"), subordinate.get("claim"))
    return dict(totals)
