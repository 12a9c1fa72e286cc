"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

NVML is the library ``nvidia-smi`` itself uses, so it sees every physical GPU
whatever ``CUDA_VISIBLE_DEVICES`` says: the worker reports the machine, and the
index of each device is its NVML index. Reading is split in two so that the
conversion can be tested on recorded data without a GPU: ``read_nvml`` talks to
the library and returns plain ``NvmlGpuRecord`` values, ``records_to_reports``
turns those into ``DeviceReport`` and touches nothing else.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from gpufleet.schemas.devices import DeviceReport, DeviceType
from gpufleet.worker.devices.base import DetectionError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class NvmlGpuRecord:
    """What NVML said about one GPU, before any interpretation. Memory in bytes."""

    index: int
    name: str
    uuid: str
    memory_total: int
    memory_used: int
    compute_capability: tuple[int, int]
    utilization: float | None  # percent of time a kernel ran; None where NVML does not support it
    temperature: float | None  # Celsius, GPU die sensor; None where NVML does not support it


def load_pynvml() -> ModuleType | None:
    """The ``pynvml`` module, or None when the package is not installed (a worker without NVIDIA)."""
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def _text(value: str | bytes) -> str:
    """NVML strings arrive as ``bytes`` from nvidia-ml-py releases before 11.515."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _optional(nvml: ModuleType, read: Callable[[], T]) -> T | None:
    """A reading some GPUs do not offer (MIG mode, some consumer boards): None rather than an error."""
    try:
        return read()
    except nvml.NVMLError_NotSupported:
        return None


def _read_one(nvml: ModuleType, index: int) -> NvmlGpuRecord:
    """One GPU's record; a failing mandatory reading names the GPU and what could not be read."""
    step = "handle"
    try:
        handle: Any = nvml.nvmlDeviceGetHandleByIndex(index)
        step = "name"
        name = _text(nvml.nvmlDeviceGetName(handle))
        step = "UUID"
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        step = "memory"
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        step = "compute capability"
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        step = "utilization"
        rates = _optional(nvml, lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        step = "temperature"
        sensor = nvml.NVML_TEMPERATURE_GPU
        temperature = _optional(nvml, lambda: nvml.nvmlDeviceGetTemperature(handle, sensor))
    except nvml.NVMLError as exc:
        raise DetectionError(f"NVIDIA GPU {index}: cannot read its {step} through NVML: {exc}") from exc
    return NvmlGpuRecord(
        index=index,
        name=name,
        uuid=uuid,
        memory_total=int(memory.total),
        memory_used=int(memory.used),
        compute_capability=(int(major), int(minor)),
        utilization=float(rates.gpu) if rates is not None else None,
        temperature=float(temperature) if temperature is not None else None,
    )


def read_nvml(nvml: ModuleType) -> list[NvmlGpuRecord]:
    """Every GPU NVML can see, in NVML order; [] when there is no NVIDIA driver or library.

    A missing library or an unloaded driver means "no NVIDIA hardware here" and is
    not an error; anything else (a lost GPU, no permission, MIG trouble) means the
    hardware is there but unreadable, hence ``DetectionError``.
    """
    try:
        nvml.nvmlInit()
    except (nvml.NVMLError_LibraryNotFound, nvml.NVMLError_DriverNotLoaded):
        return []
    except nvml.NVMLError as exc:
        raise DetectionError(f"NVML failed to initialise: {exc}") from exc
    try:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            raise DetectionError(f"NVML cannot count the GPUs: {exc}") from exc
        return [_read_one(nvml, index) for index in range(count)]
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as exc:  # the readings are already taken; a failed shutdown changes nothing
            logger.debug("nvmlShutdown failed: %s", exc)


def records_to_reports(records: list[NvmlGpuRecord]) -> list[DeviceReport]:
    """The ``DeviceReport`` for each record; pure, so recorded readings can be replayed in tests."""
    return [
        DeviceReport(
            index=record.index,
            type=DeviceType.CUDA,
            vendor="nvidia",
            name=record.name,
            uuid=record.uuid,
            memory_total=record.memory_total,
            memory_used=record.memory_used,
            compute_capability=f"{record.compute_capability[0]}.{record.compute_capability[1]}",
            utilization=record.utilization,
            temperature=record.temperature,
        )
        for record in records
    ]


class NvidiaDetector:
    """Reports every NVIDIA GPU of the machine, or nothing where NVML is absent."""

    name = "nvidia"

    def detect(self) -> list[DeviceReport]:
        nvml = load_pynvml()
        if nvml is None:
            return []
        return records_to_reports(read_nvml(nvml))
