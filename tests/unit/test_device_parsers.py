"""GPU detectors: the pure parsers on recorded tool output, and each detector's behaviour
when its tool or library is missing or fails. No GPU is needed: NVML is faked function by
function on the real ``pynvml`` module, the CLIs by replacing ``subprocess.run``.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pynvml
import pytest

from gpufleet.schemas.devices import DeviceReport, DeviceType
from gpufleet.worker.devices import amd, nvidia, registry
from gpufleet.worker.devices.amd import AmdDetector, parse_amd_smi, parse_rocm_smi
from gpufleet.worker.devices.apple import AppleDetector, parse_system_profiler
from gpufleet.worker.devices.base import DetectionError
from gpufleet.worker.devices.inventory import InventoryDetector, InventoryError
from gpufleet.worker.devices.nvidia import NvidiaDetector, NvmlGpuRecord, records_to_reports

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "devices"
MIB = 1 << 20


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def summary(report: DeviceReport) -> tuple[Any, ...]:
    """The fields a parser decides, in a form a table can state exactly."""
    return (
        report.index,
        report.name,
        report.uuid,
        report.memory_total,
        report.memory_used,
        report.compute_capability,
        report.utilization,
        report.temperature,
    )


# --- rocm-smi -------------------------------------------------------------------------------------

ROCM_SMI_CASES = [
    pytest.param(
        "rocm-smi_rx7900xt.json",
        [
            (0, "Radeon RX 7900 XT", "0xd8607413b0e3a90b", 21458059264, 27856896, "gfx1100", 0.0, 38.0),
        ],
        id="rx7900xt-rocm6",
    ),
    pytest.param(
        "rocm-smi_mi250x_rocm5.json",
        [
            (
                0,
                "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2",
                "0x87fc3ea34b2236f3",
                68702699520,
                61551919104,
                None,
                100.0,
                64.0,
            ),
            (
                1,
                "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2",
                "0x4a19d2c3e5b60718",
                68702699520,
                11403264,
                None,
                0.0,
                51.0,
            ),
        ],
        id="mi250x-rocm5",
    ),
]


@pytest.mark.parametrize(("name", "expected"), ROCM_SMI_CASES)
def test_rocm_smi_recorded_output(name: str, expected: list[tuple[Any, ...]]) -> None:
    reports = parse_rocm_smi(fixture(name))
    assert [summary(report) for report in reports] == expected
    for report in reports:
        assert (report.type, report.vendor, report.unified_memory, report.simulated) == (
            DeviceType.ROCM,
            "amd",
            False,
            False,
        )


def test_rocm_smi_skips_system_key_reads_na_and_hex_names() -> None:
    """Warning lines before the JSON, "system", "N/A" readings and a PCI id in "Card Series"."""
    text = "WARNING: Unlocked monitor_devices lock; it should have already been unlocked.\n" + json.dumps(
        {
            "card1": {
                "Temperature (Sensor edge) (C)": "N/A",
                "Temperature (Sensor junction) (C)": "45.0",
                "GPU use (%)": "N/A",
                "VRAM Total Memory (B)": "34208743424",
                "VRAM Total Used Memory (B)": "0",
                "Card Series": "N/A",
                "Card Model": "0x7551",
                "Unique ID": "N/A",
                "GFX Version": "gfx1201",
            },
            "system": {"Driver version": "6.16.6"},
        }
    )
    (report,) = parse_rocm_smi(text)
    assert summary(report) == (1, "AMD GPU", None, 34208743424, 0, "gfx1201", None, 45.0)


@pytest.mark.parametrize("text", ["", "not json", "[]", json.dumps({"card0": {"GPU use (%)": "3"}})])
def test_rocm_smi_unusable_output_is_a_detection_error(text: str) -> None:
    with pytest.raises(DetectionError, match="rocm-smi"):
        parse_rocm_smi(text)


# --- amd-smi --------------------------------------------------------------------------------------

AMD_SMI_CASES = [
    pytest.param(
        "amd-smi_static_mi210.json",
        "amd-smi_metric_mi210.json",
        "amd-smi_list_mi210.json",
        [
            (
                0,
                "AMD Instinct MI210",
                "67ff740f-0000-1000-80e6-b5bb3c3ce0db",
                65520 * MIB,
                51206 * MIB,
                "gfx90a",
                87.0,
                47.0,
            ),
        ],
        id="mi210-gpu_data",
    ),
    pytest.param(
        "amd-smi_static_rx6600.json",
        "amd-smi_metric_rx6600.json",
        None,
        [
            (0, "Navi 23 [Radeon RX 6600/6600 XT", None, 8176 * MIB, 202 * MIB, None, 1.0, 36.0),
        ],
        id="rx6600-bare-list",
    ),
]


@pytest.mark.parametrize(("static", "metric", "listing", "expected"), AMD_SMI_CASES)
def test_amd_smi_recorded_output(
    static: str, metric: str, listing: str | None, expected: list[tuple[Any, ...]]
) -> None:
    reports = parse_amd_smi(fixture(static), fixture(metric), fixture(listing) if listing else None)
    assert [summary(report) for report in reports] == expected
    for report in reports:
        assert (report.type, report.vendor, report.unified_memory) == (DeviceType.ROCM, "amd", False)


def test_amd_smi_falls_back_to_static_size_and_hotspot() -> None:
    """MI300-class GPUs report no edge temperature; a metric without mem_usage leaves the static size."""
    static = json.dumps(
        [
            {
                "gpu": 0,
                "asic": {"market_name": "AMD Instinct MI300X", "target_graphics_version": "gfx942"},
                "vram": {"size": {"value": 196592, "unit": "MB"}},
            }
        ]
    )
    metric = json.dumps(
        {"gpu_data": [{"gpu": 0, "temperature": {"edge": "N/A", "hotspot": {"value": 36, "unit": "C"}}}]}
    )
    (report,) = parse_amd_smi(static, metric)
    assert summary(report) == (0, "AMD Instinct MI300X", None, 196592 * MIB, 0, "gfx942", None, 36.0)


def test_amd_smi_without_any_size_is_a_detection_error() -> None:
    with pytest.raises(DetectionError, match="no VRAM size for GPU 0"):
        parse_amd_smi(json.dumps([{"gpu": 0}]), json.dumps([{"gpu": 0}]))


# --- system_profiler ------------------------------------------------------------------------------

APPLE_CASES = [
    pytest.param(
        "system_profiler_m1_pro.json",
        17179869184,
        9663676416,
        (0, "Apple M1 Pro", None, 17179869184, 9663676416, "metal3", None, None),
        16,
        id="m1-pro",
    ),
    pytest.param(
        "system_profiler_m2_ultra.json",
        206158430208,
        151397597184,
        (0, "Apple M2 Ultra", None, 206158430208, 151397597184, "metal3", None, None),
        76,
        id="m2-ultra",
    ),
]


@pytest.mark.parametrize(("name", "memsize", "used", "expected", "cores"), APPLE_CASES)
def test_system_profiler_recorded_output(
    name: str, memsize: int, used: int, expected: tuple[Any, ...], cores: int
) -> None:
    (report,) = parse_system_profiler(fixture(name), memsize, used)
    assert summary(report) == expected
    assert (report.type, report.vendor, report.unified_memory, report.cores) == (
        DeviceType.METAL,
        "apple",
        True,
        cores,
    )


def test_system_profiler_ignores_other_gpus() -> None:
    """An Intel Mac's entries: no Apple GPU among them."""
    text = json.dumps(
        {
            "SPDisplaysDataType": [
                {
                    "_name": "Intel Iris Pro",
                    "sppci_model": "Intel Iris Pro",
                    "spdisplays_vram_shared": "1536 MB",
                },
                {
                    "_name": "kHW_NVidiaGeForceGT750MItem",
                    "sppci_model": "NVIDIA GeForce GT 750M",
                    "spdisplays_vram": "2 GB",
                },
            ]
        }
    )
    assert parse_system_profiler(text, 17179869184, 0) == []


@pytest.mark.parametrize("text", ["", "{}", '{"SPDisplaysDataType": "none"}'])
def test_system_profiler_unusable_output_is_a_detection_error(text: str) -> None:
    with pytest.raises(DetectionError, match="system_profiler"):
        parse_system_profiler(text, 1, 0)


# --- NVML records ---------------------------------------------------------------------------------

NVML_CASES = [
    pytest.param(
        "nvml_records_2x_h100.json",
        [
            (
                0,
                "NVIDIA H100 80GB HBM3",
                "GPU-6f1d2c4a-93b0-4e51-a7c8-0d2e5b9f1a37",
                85520809984,
                74048 * MIB,
                "9.0",
                97.0,
                58.0,
            ),
            (
                1,
                "NVIDIA H100 80GB HBM3",
                "GPU-b83e07d5-1c6a-4f92-8e3d-5a7c2b0e9d14",
                85520809984,
                556269568,
                "9.0",
                0.0,
                31.0,
            ),
        ],
        id="2x-h100",
    ),
    pytest.param(
        "nvml_records_rtx4090.json",
        [
            (
                0,
                "NVIDIA GeForce RTX 4090",
                "GPU-2a7e9c15-d4b3-8f60-1e92-c5a08b7d3f46",
                24564 * MIB,
                507 * MIB,
                "8.9",
                0.0,
                29.0,
            ),
        ],
        id="rtx4090",
    ),
]


def load_records(name: str) -> list[NvmlGpuRecord]:
    return [
        NvmlGpuRecord(**{**raw, "compute_capability": tuple(raw["compute_capability"])})
        for raw in json.loads(fixture(name))
    ]


@pytest.mark.parametrize(("name", "expected"), NVML_CASES)
def test_nvml_records_to_reports(name: str, expected: list[tuple[Any, ...]]) -> None:
    reports = records_to_reports(load_records(name))
    assert [summary(report) for report in reports] == expected
    for report in reports:
        assert (report.type, report.vendor, report.unified_memory) == (DeviceType.CUDA, "nvidia", False)


# --- NVML reader on a faked pynvml ----------------------------------------------------------------


def nvml_error(code: int) -> Exception:
    """pynvml turns the code into its subclass, e.g. NVML_ERROR_NOT_SUPPORTED into NVMLError_NotSupported."""
    error: Exception = pynvml.NVMLError(code)
    return error


def raising(error: Exception) -> Any:
    def call(*args: object) -> Any:
        raise error

    return call


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two H100s behind the real pynvml module's names; returns the log of init/shutdown calls."""
    calls: list[str] = []
    records = load_records("nvml_records_2x_h100.json")
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: calls.append("init"))
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: len(records))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda index: records[index])
    # bytes, as nvidia-ml-py returned names before 11.515
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda handle: handle.name.encode())
    monkeypatch.setattr(pynvml, "nvmlDeviceGetUUID", lambda handle: handle.uuid)
    monkeypatch.setattr(
        pynvml,
        "nvmlDeviceGetMemoryInfo",
        lambda handle: pynvml.c_nvmlMemory_t(
            total=handle.memory_total, free=handle.memory_total - handle.memory_used, used=handle.memory_used
        ),
    )
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCudaComputeCapability", lambda handle: handle.compute_capability)
    monkeypatch.setattr(
        pynvml,
        "nvmlDeviceGetUtilizationRates",
        lambda handle: pynvml.c_nvmlUtilization_t(gpu=int(handle.utilization), memory=0),
    )
    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", lambda handle, sensor: int(handle.temperature))
    return calls


def test_nvml_reader_reads_every_gpu(fake_nvml: list[str]) -> None:
    reports = NvidiaDetector().detect()
    assert [summary(report) for report in reports] == NVML_CASES[0].values[1]
    assert fake_nvml == ["init", "shutdown"]


def test_nvml_not_supported_readings_are_none(fake_nvml: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", raising(nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", raising(pynvml.NVMLError_NotSupported()))
    reports = NvidiaDetector().detect()
    assert [(report.name, report.utilization, report.temperature) for report in reports] == [
        ("NVIDIA H100 80GB HBM3", None, None),
        ("NVIDIA H100 80GB HBM3", None, None),
    ]
    assert [report.memory_total for report in reports] == [85520809984, 85520809984]


def test_nvml_failure_on_one_gpu_names_it(fake_nvml: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def memory(handle: NvmlGpuRecord) -> Any:
        if handle.index == 1:
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return pynvml.c_nvmlMemory_t(total=1, free=1, used=0)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", memory)
    with pytest.raises(DetectionError) as caught:
        NvidiaDetector().detect()
    assert str(caught.value) == "NVIDIA GPU 1: cannot read its memory through NVML: GPU is lost"
    assert fake_nvml == ["init", "shutdown"]


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED])
def test_nvml_absent_library_or_driver_means_no_gpus(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    monkeypatch.setattr(pynvml, "nvmlInit", raising(nvml_error(code)))
    assert NvidiaDetector().detect() == []


def test_nvml_other_init_failure_is_a_detection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pynvml, "nvmlInit", raising(nvml_error(pynvml.NVML_ERROR_NO_PERMISSION)))
    with pytest.raises(DetectionError, match="NVML failed to initialise: Insufficient Permissions"):
        NvidiaDetector().detect()


def test_nvml_without_pynvml_installed_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert nvidia.load_pynvml() is None
    assert NvidiaDetector().detect() == []


# --- the CLI detectors, with subprocess.run faked -------------------------------------------------


class FakeTools:
    """Stands in for ``subprocess.run``: answers by the subcommand, logs each call."""

    def __init__(self, answers: dict[str, str | Exception], returncode: int = 0) -> None:
        self.answers = answers
        self.returncode = returncode
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        answer = self.answers[argv[1]]
        if isinstance(answer, Exception):
            raise answer
        return subprocess.CompletedProcess(argv, self.returncode, stdout=answer, stderr="boom")


def which(*present: str) -> Any:
    return lambda name: f"/opt/rocm/bin/{name}" if name in present else None


def test_amd_detector_without_tools_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", which())
    assert AmdDetector().detect() == []


def test_amd_detector_uses_amd_smi_and_keeps_static_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    tools = FakeTools(
        {
            "static": fixture("amd-smi_static_mi210.json"),
            "list": fixture("amd-smi_list_mi210.json"),
            "metric": fixture("amd-smi_metric_mi210.json"),
        }
    )
    monkeypatch.setattr(shutil, "which", which("amd-smi", "rocm-smi"))
    monkeypatch.setattr(subprocess, "run", tools)
    detector = AmdDetector()
    first, second = detector.detect(), detector.detect()
    assert (
        [summary(report) for report in first]
        == [summary(report) for report in second]
        == [
            summary(
                parse_amd_smi(
                    fixture("amd-smi_static_mi210.json"),
                    fixture("amd-smi_metric_mi210.json"),
                    fixture("amd-smi_list_mi210.json"),
                )[0]
            )
        ]
    )
    assert [argv[1] for argv in tools.calls] == ["static", "list", "metric", "metric"]


def test_amd_detector_falls_back_to_rocm_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    tools = FakeTools({"--showproductname": fixture("rocm-smi_rx7900xt.json")}, returncode=2)
    monkeypatch.setattr(shutil, "which", which("rocm-smi"))
    monkeypatch.setattr(subprocess, "run", tools)
    (report,) = AmdDetector().detect()
    assert report.name == "Radeon RX 7900 XT"
    assert tools.calls == [["/opt/rocm/bin/rocm-smi", *amd.ROCM_SMI_ARGS]]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (subprocess.TimeoutExpired("amd-smi", 10), "amd-smi gave no answer within 10 s"),
        ("", "`amd-smi static --json` exited with 1: boom"),
    ],
)
def test_amd_tool_failure_depends_on_the_driver(
    monkeypatch: pytest.MonkeyPatch, answer: str | Exception, message: str
) -> None:
    """A failing tool is an unreadable GPU where /dev/kfd exists, and no GPU at all where it does not."""
    monkeypatch.setattr(shutil, "which", which("amd-smi"))
    monkeypatch.setattr(subprocess, "run", FakeTools({"static": answer}, returncode=1))
    monkeypatch.setattr(amd, "amdgpu_compute_present", lambda: False)
    assert AmdDetector().detect() == []
    monkeypatch.setattr(amd, "amdgpu_compute_present", lambda: True)
    with pytest.raises(DetectionError, match=message):
        AmdDetector().detect()


@pytest.mark.parametrize(("platform_name", "machine"), [("linux", "x86_64"), ("darwin", "x86_64"), ("win32", "AMD64")])
def test_apple_detector_elsewhere_reports_nothing(
    monkeypatch: pytest.MonkeyPatch, platform_name: str, machine: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform_name)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(subprocess, "run", FakeTools({}))  # any call would fail the test with KeyError
    assert AppleDetector().detect() == []


def on_apple_silicon(monkeypatch: pytest.MonkeyPatch, *tools: str) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}" if name in tools else None)


def test_apple_detector_without_system_profiler_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    on_apple_silicon(monkeypatch, "sysctl")
    assert AppleDetector().detect() == []


def test_apple_detector_on_apple_silicon(monkeypatch: pytest.MonkeyPatch) -> None:
    on_apple_silicon(monkeypatch, "system_profiler", "sysctl")
    tools = FakeTools({"SPDisplaysDataType": fixture("system_profiler_m2_ultra.json"), "-n": "206158430208\n"})
    monkeypatch.setattr(subprocess, "run", tools)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=206158430208, available=54760833024))
    detector = AppleDetector()
    (report,) = detector.detect()
    assert summary(report) == (0, "Apple M2 Ultra", None, 206158430208, 151397597184, "metal3", None, None)
    assert (report.unified_memory, report.cores) == (True, 76)
    detector.detect()
    assert len(tools.calls) == 2  # system_profiler and sysctl ran once; only psutil is read again


def test_apple_detector_bad_memsize_is_a_detection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    on_apple_silicon(monkeypatch, "system_profiler", "sysctl")
    monkeypatch.setattr(subprocess, "run", FakeTools({"SPDisplaysDataType": "{}", "-n": "lots\n"}))
    with pytest.raises(DetectionError, match=r"hw\.memsize"):
        AppleDetector().detect()


# --- simulated inventory --------------------------------------------------------------------------

INVENTORY: dict[str, Any] = {
    "cpu": {"cores": 64, "memory": 549755813888, "name": "Simulated EPYC"},
    "gpus": [
        {
            "vendor": "nvidia",
            "name": "NVIDIA H100 80GB HBM3",
            "type": "cuda",
            "memory": 85520809984,
            "compute_capability": "9.0",
        },
        {
            "vendor": "amd",
            "name": "AMD Instinct MI300X",
            "type": "rocm",
            "memory": 206141652992,
            "compute_capability": "gfx942",
        },
        {"vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3", "type": "cuda", "memory": 85520809984},
        {"vendor": "apple", "name": "Apple M2 Ultra", "type": "metal", "memory": 206158430208},
    ],
}


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(content)
    return path


def test_inventory_devices_are_simulated_with_per_type_indices(tmp_path: Path) -> None:
    reports = InventoryDetector(write(tmp_path, json.dumps(INVENTORY))).detect()
    assert [(r.type, r.index, r.name, r.memory_total, r.unified_memory) for r in reports] == [
        (DeviceType.CUDA, 0, "NVIDIA H100 80GB HBM3", 85520809984, False),
        (DeviceType.ROCM, 0, "AMD Instinct MI300X", 206141652992, False),
        (DeviceType.CUDA, 1, "NVIDIA H100 80GB HBM3", 85520809984, False),
        (DeviceType.METAL, 0, "Apple M2 Ultra", 206158430208, True),
        (DeviceType.CPU, 0, "Simulated EPYC", 549755813888, False),
    ]
    assert all(r.simulated and r.memory_used == 0 for r in reports)
    assert reports[-1].cores == 64


def test_inventory_without_cpu_reports_the_real_one(tmp_path: Path) -> None:
    reports = InventoryDetector(write(tmp_path, json.dumps({"gpus": INVENTORY["gpus"][:1]}))).detect()
    assert [(r.type, r.simulated) for r in reports] == [(DeviceType.CUDA, True), (DeviceType.CPU, False)]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param('{"gpus": [', "is not valid JSON", id="invalid-json"),
        pytest.param(
            json.dumps({"gpus": [{**INVENTORY["gpus"][0], "colour": "green"}]}),
            "gpus.0.colour",
            id="unknown-field",
        ),
        pytest.param(
            json.dumps({"gpus": [{**INVENTORY["gpus"][0], "memory": -1}]}),
            "gpus.0.memory",
            id="negative-memory",
        ),
        pytest.param(json.dumps({"cpu": {"cores": 8, "memory": -4096}}), "cpu.memory", id="negative-cpu-memory"),
    ],
)
def test_inventory_errors_name_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InventoryError) as caught:
        InventoryDetector(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_inventory_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(InventoryError, match=r"cannot read device inventory .*absent\.json"):
        InventoryDetector(path)


def test_registry_imports_every_detector() -> None:
    """registry.py imports the three detectors by these names; each constructs without arguments."""
    assert [detector.name for detector in registry.GPU_DETECTORS] == ["nvidia", "amd", "apple"]
