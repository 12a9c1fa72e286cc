"""The detector protocol.

A detector answers for one kind of hardware. ``detect()`` returns the devices
it found (indexed from 0 within its type), an empty list when its hardware or
tool is absent, and raises ``DetectionError`` only when the hardware is there
but could not be read (the worker logs that and goes on without those devices).
Detectors are blocking; the worker calls them in a thread.
"""

from __future__ import annotations

import os
import subprocess
from typing import Protocol

from gpufleet.common.errors import Unavailable
from gpufleet.schemas.devices import DeviceReport

TOOL_TIMEOUT_S = 10.0


class DetectionError(Unavailable):
    """The hardware seems present but reading it failed; the message says why."""


class Detector(Protocol):
    name: str

    def detect(self) -> list[DeviceReport]: ...


def run_tool(argv: list[str], *, json_despite_failure: bool = False) -> str:
    """A vendor tool's stdout, or ``DetectionError`` saying what went wrong.

    ``json_despite_failure``: some tools (rocm-smi) exit non-zero when one reading is
    unsupported yet print good JSON; then only a failure with no JSON counts as one.
    """
    tool = os.path.basename(argv[0])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DetectionError(f"{tool} gave no answer within {TOOL_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise DetectionError(f"cannot run {tool}: {exc}") from exc
    printed_json = json_despite_failure and any(mark in done.stdout for mark in "{[")
    if done.returncode != 0 and not printed_json:
        detail = (done.stderr.strip() or done.stdout.strip())[-300:]
        raise DetectionError(f"`{tool} {' '.join(argv[1:])}` exited with {done.returncode}: {detail}")
    return done.stdout
