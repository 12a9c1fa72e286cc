"""Apple Silicon GPUs (Metal), through ``system_profiler`` and ``sysctl``.

The GPU shares the machine's memory, so its ``memory_total`` is the unified
memory (``hw.memsize``) and its ``memory_used`` what the whole system uses
(psutil: total minus available). ``system_profiler`` gives the chip name, the GPU
core count (reported in ``cores``) and the Metal family (in
``compute_capability``, e.g. "metal3"). Intel Macs are skipped: their GPUs are
not what gpufleet's Metal engines run on.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys

import psutil

from gpufleet.schemas.devices import DeviceReport, DeviceType
from gpufleet.worker.devices.base import DetectionError, run_tool


def _is_apple_gpu(entry: dict[str, object]) -> bool:
    """An Apple GPU entry, as opposed to a display or a third-party GPU; older macOS wrote
    the vendor as "Apple (0x106b)", newer as "sppci_vendor_Apple".
    """
    vendor = str(entry.get("spdisplays_vendor", "")).lower()
    model = str(entry.get("sppci_model", entry.get("_name", "")))
    return "apple" in vendor or model.startswith("Apple ")


def _metal_family(value: object) -> str | None:
    """ "spdisplays_metal3" -> "metal3"; absent on macOS releases before Metal 3."""
    if not isinstance(value, str) or not value:
        return None
    return value.removeprefix("spdisplays_")


def parse_system_profiler(json_text: str, memsize_bytes: int, used_bytes: int) -> list[DeviceReport]:
    """``system_profiler SPDisplaysDataType -json`` output -> one METAL report per Apple GPU."""
    try:
        data = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise DetectionError(f"system_profiler printed no readable JSON: {exc}") from exc
    entries = data.get("SPDisplaysDataType") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DetectionError("system_profiler JSON has no SPDisplaysDataType list")
    gpus = [entry for entry in entries if isinstance(entry, dict) and _is_apple_gpu(entry)]
    reports: list[DeviceReport] = []
    for index, entry in enumerate(gpus):
        cores = str(entry.get("sppci_cores", ""))
        reports.append(
            DeviceReport(
                index=index,
                type=DeviceType.METAL,
                vendor="apple",
                name=str(entry.get("sppci_model") or entry.get("_name") or "Apple GPU"),
                memory_total=memsize_bytes,
                memory_used=max(0, min(used_bytes, memsize_bytes)),
                compute_capability=_metal_family(entry.get("spdisplays_mtlgpufamilysupport")),
                unified_memory=True,
                cores=int(cores) if cores.isdigit() else None,
            )
        )
    return reports


def _run(argv: list[str]) -> str:
    return run_tool(argv)


def parse_memsize(text: str) -> int:
    """``sysctl -n hw.memsize`` prints the installed memory in bytes."""
    try:
        return int(text.strip())
    except ValueError as exc:
        raise DetectionError(f"sysctl hw.memsize printed {text.strip()!r}, not a byte count") from exc


class AppleDetector:
    """Reports the GPU of an Apple Silicon Mac; nothing elsewhere.

    The chip and its memory size never change while the worker runs, so the two
    tools run once; only the memory in use is read on every call.
    """

    name = "apple"

    def __init__(self) -> None:
        self._static: tuple[str, int] | None = None

    def detect(self) -> list[DeviceReport]:
        if sys.platform != "darwin" or platform.machine() != "arm64":
            return []
        profiler, sysctl = shutil.which("system_profiler"), shutil.which("sysctl")
        if profiler is None or sysctl is None:
            return []
        if self._static is None:
            profile = _run([profiler, "SPDisplaysDataType", "-json"])
            memsize = parse_memsize(_run([sysctl, "-n", "hw.memsize"]))
        else:
            profile, memsize = self._static
        memory = psutil.virtual_memory()
        reports = parse_system_profiler(profile, memsize, memory.total - memory.available)
        self._static = (profile, memsize)
        return reports
