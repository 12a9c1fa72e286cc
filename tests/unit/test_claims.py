"""Claimed memory per device, as summed for ``gpufleet_device_memory_bytes{kind="claimed"}``."""

from __future__ import annotations

from gpufleet.common.resources import held_by_instance, total_by_device


def test_claims_add_up_per_device_including_subordinates() -> None:
    instances = [
        # main on a: 10 bytes of host RAM, 100 on cuda:0
        ("a", {"ram": 10, "vram": {"a:cuda:0": 100}}, []),
        # main on a (cuda:0 again, cuda:1), subordinate b lends cuda:0 and 5 bytes of its RAM
        (
            "a",
            {"ram": 1, "vram": {"a:cuda:0": 50, "a:cuda:1": 70}},
            [{"worker_name": "b", "claim": {"ram": 5, "vram": {"b:cuda:0": 30}}}],
        ),
        ("c", None, []),  # pending: no claim
    ]
    assert total_by_device(held for w, c, s in instances for held in held_by_instance(w, c, s)) == {
        "a:cpu:0": 11,
        "a:cuda:0": 150,
        "a:cuda:1": 70,
        "b:cpu:0": 5,
        "b:cuda:0": 30,
    }
