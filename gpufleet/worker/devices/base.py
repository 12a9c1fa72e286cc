"""The detector protocol.

A detector answers for one kind of hardware. ``detect()`` returns the devices
it found (indexed from 0 within its type), an empty list when its hardware or
tool is absent, and raises ``DetectionError`` only when the hardware is there
but could not be read (the worker logs that and goes on without those devices).
Detectors are blocking; the worker calls them in a thread.
"""

from __future__ import annotations

from typing import Protocol

from gpufleet.schemas.devices import DeviceReport


class DetectionError(Exception):
    """The hardware seems present but reading it failed; the message says why."""


class Detector(Protocol):
    name: str

    def detect(self) -> list[DeviceReport]: ...
