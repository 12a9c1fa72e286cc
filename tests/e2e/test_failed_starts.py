"""An engine that cannot start: restarted with back-off, then released after 3 failed starts, and the
scheduler avoids that worker for the instance, saying why. Real llama-server, refusing a flag."""

from __future__ import annotations

import pytest

from tests.support.engine_cluster import Engines

pytestmark = pytest.mark.e2e


def test_three_failed_starts_release_the_instance_and_back_off_the_worker(engines: Engines) -> None:
    # llama-server exits at once on a value it does not take; gpufleet passes values of allowed
    # flags on (an unknown flag is refused at create since the allow-list: issue 12, finding 9)
    model = engines.deploy(
        "tiny-bad-flag", engines.models / "llama-tiny.gguf", backend_parameters=["--rope-scaling", "sideways"]
    )
    try:
        seen_errors: list[dict[str, object]] = []

        def released(listed: list[dict[str, object]]) -> bool:
            seen_errors.extend(x for x in listed if x["state"] == "error")
            return (
                len(listed) == 1
                and listed[0]["state"] == "pending"
                and "avoided after engine failures" in str(listed[0]["state_message"])
            )

        # back-off 0.5 s, then 1 s between the three starts (tests/support/engine_cluster.py)
        [instance] = engines.wait(model["id"], released, "the release after 3 failed starts", timeout=60)
        message = str(instance["state_message"])
        assert "main" in message and "3 failed starts" in message, message
        assert instance["worker_id"] is None and instance["pid"] is None
        # on the way, the error said what the engine said
        assert any("--rope-scaling" in str(x["state_message"]) for x in seen_errors), seen_errors[-1:]
        assert max(int(str(x["restart_count"])) for x in seen_errors) >= 1
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")
