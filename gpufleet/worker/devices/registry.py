"""Which detectors run, in order. GPUs first (each vendor's own tool), the CPU last.

``--device-inventory`` replaces the whole list with the simulated inventory.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gpufleet.schemas.devices import DeviceReport
from gpufleet.worker.devices.amd import AmdDetector
from gpufleet.worker.devices.apple import AppleDetector
from gpufleet.worker.devices.base import DetectionError, Detector
from gpufleet.worker.devices.cpu import CpuDetector
from gpufleet.worker.devices.inventory import InventoryDetector
from gpufleet.worker.devices.nvidia import NvidiaDetector

logger = logging.getLogger(__name__)

GPU_DETECTORS: list[Detector] = [NvidiaDetector(), AmdDetector(), AppleDetector()]


class DeviceDetection:
    """Detects this machine's devices; built once per worker, called on every status report."""

    def __init__(self, inventory: Path | None = None) -> None:
        self.inventory = InventoryDetector(inventory) if inventory else None
        self._last_good: dict[str, list[DeviceReport]] = {}
        self._failing: set[str] = set()

    def detect(self) -> list[DeviceReport]:
        if self.inventory is not None:
            return self.inventory.detect()
        reports: list[DeviceReport] = []
        for detector in GPU_DETECTORS:
            reports.extend(self._detect_one(detector))
        reports.extend(CpuDetector().detect())
        return reports

    def _detect_one(self, detector: Detector) -> list[DeviceReport]:
        """A detector's devices; after a failed reading, its last good one, so a hiccup of a vendor
        tool does not make GPUs vanish from the cluster (and come back) between two reports."""
        try:
            found = detector.detect()
        except DetectionError as exc:
            last = self._last_good.get(detector.name, [])
            if detector.name not in self._failing:
                what = f"keeping the last reading of {len(last)} device(s)" if last else "continuing without them"
                logger.warning("%s GPUs present but unreadable, %s: %s", detector.name, what, exc)
                self._failing.add(detector.name)
            return last
        if detector.name in self._failing:
            logger.info("%s GPUs readable again", detector.name)
            self._failing.discard(detector.name)
        self._last_good[detector.name] = found
        return found
