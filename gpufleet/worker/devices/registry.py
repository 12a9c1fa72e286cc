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
        self._warned: set[str] = set()

    def detect(self) -> list[DeviceReport]:
        if self.inventory is not None:
            return self.inventory.detect()
        reports: list[DeviceReport] = []
        for detector in GPU_DETECTORS:
            try:
                reports.extend(detector.detect())
            except DetectionError as exc:
                if detector.name not in self._warned:
                    logger.warning("%s GPUs present but unreadable, continuing without them: %s", detector.name, exc)
                    self._warned.add(detector.name)
        reports.extend(CpuDetector().detect())
        return reports
