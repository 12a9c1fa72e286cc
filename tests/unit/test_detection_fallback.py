"""A vendor tool that fails once must not make GPUs vanish from the cluster and come back."""

from __future__ import annotations

import pytest

from gpufleet.schemas.devices import DeviceReport, DeviceType
from gpufleet.worker.devices import registry
from gpufleet.worker.devices.base import DetectionError


class FlakyGpus:
    """A detector double standing in for the vendor tool's answers (no GPU exists here)."""

    name = "flaky"

    def __init__(self) -> None:
        self.answers: list[list[DeviceReport] | Exception] = []

    def detect(self) -> list[DeviceReport]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def gpu(used: int) -> DeviceReport:
    return DeviceReport(index=0, type=DeviceType.CUDA, vendor="nvidia", name="GPU", memory_total=100, memory_used=used)


def test_last_good_reading_is_kept_while_the_tool_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    flaky = FlakyGpus()
    monkeypatch.setattr(registry, "GPU_DETECTORS", [flaky])
    detection = registry.DeviceDetection()
    flaky.answers = [DetectionError("never read: no last reading"), [gpu(10)], DetectionError("hiccup"), [gpu(30)]]

    def gpus() -> list[int]:
        return [d.memory_used for d in detection.detect() if d.type == DeviceType.CUDA]

    assert gpus() == []  # nothing known yet: continue without
    assert gpus() == [10]
    assert gpus() == [10]  # the failed reading keeps the last good one
    assert gpus() == [30]
