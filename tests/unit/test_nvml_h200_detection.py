"""NVML detection replayed from a real NVIDIA H200's answers (issue 16, ``benchmarks/gpu_truth.sh``).

``tests/fixtures/nvml_h200.json`` is ``benchmarks/results/gpu-truth/nvml.json``: what NVML answered on
the lent machine (driver 580.159.04, CUDA 13.0) before any engine ran. No GPU exists here, so a
stand-in for the ``pynvml`` module returns exactly those recorded values, as the same ctypes
structures the real library builds; everything from ``NvidiaDetector.detect`` on is gpufleet's real
code (``load_pynvml`` imports the stand-in, ``read_nvml`` and ``records_to_reports`` convert it).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pynvml
import pytest

from gpufleet.schemas.devices import DeviceReport, DeviceType
from gpufleet.worker.devices.nvidia import NvidiaDetector

FIXTURE = Path(__file__).parent.parent / "fixtures" / "nvml_h200.json"


def recorded_nvml(answers: dict[str, Any], calls: list[str]) -> types.ModuleType:
    """A ``pynvml`` that answers what the H200 answered; its error classes and structures are the real ones."""
    devices = answers["devices"]
    module = types.ModuleType("pynvml")
    for name in ("NVMLError", "NVMLError_NotSupported", "NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded"):
        setattr(module, name, getattr(pynvml, name))
    module.NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU  # type: ignore[attr-defined]

    def memory(handle: dict[str, Any]) -> Any:
        m = handle["memory"]
        return pynvml.c_nvmlMemory_t(total=m["total"], free=m["free"], used=m["used"])

    def utilization(handle: dict[str, Any]) -> Any:
        u = handle["utilization"]
        return pynvml.c_nvmlUtilization_t(gpu=u["gpu"], memory=u["memory"])

    functions = {
        "nvmlInit": lambda: calls.append("init"),
        "nvmlShutdown": lambda: calls.append("shutdown"),
        "nvmlSystemGetDriverVersion": lambda: answers["driver"],
        "nvmlDeviceGetCount": lambda: len(devices),
        "nvmlDeviceGetHandleByIndex": lambda index: devices[index],
        "nvmlDeviceGetName": lambda handle: handle["name"],
        "nvmlDeviceGetUUID": lambda handle: handle["uuid"],
        "nvmlDeviceGetMemoryInfo": memory,
        "nvmlDeviceGetCudaComputeCapability": lambda handle: tuple(handle["compute_capability"]),
        "nvmlDeviceGetUtilizationRates": utilization,
        "nvmlDeviceGetTemperature": lambda handle, sensor: handle["temperature"],
    }
    for name, function in functions.items():
        setattr(module, name, function)
    return module


def test_the_recorded_h200_is_detected_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = json.loads(FIXTURE.read_text())
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pynvml", recorded_nvml(answers, calls))

    reports = NvidiaDetector().detect()

    assert reports == [
        DeviceReport(
            index=0,
            type=DeviceType.CUDA,
            vendor="nvidia",
            name="NVIDIA H200",
            uuid="GPU-312b04b8-6203-d6f6-8082-5e9334efc419",
            memory_total=150_754_820_096,  # 140.40 GiB: what `gpufleet devices` showed on the machine
            # nvmlDeviceGetMemoryInfo (v1) counts the driver's reservation as used: 615 MiB with no
            # process running (the v2 answer in the fixture: reserved 644 939 776, used 0).
            memory_used=644_939_776,
            compute_capability="9.0",
            unified_memory=False,
            utilization=0.0,
            temperature=34.0,
        )
    ]
    assert calls == ["init", "shutdown"]  # NVML is released after one reading
    assert answers["devices"][0]["memory_v2"]["reserved"] == reports[0].memory_used
