"""AMD GPUs through ROCm's command-line tools: ``amd-smi`` where installed, else ``rocm-smi``.

The CLIs rather than the ``amdsmi`` Python bindings, because the bindings must
match the ROCm library installed on each machine, which the tools always do.
``amd-smi`` replaces the deprecated ``rocm-smi`` from ROCm 6 on. Both print JSON
whose shape changed across releases, so parsing is kept in pure functions
(``parse_amd_smi``, ``parse_rocm_smi``) tested on recorded output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from typing import Any

from gpufleet.schemas.devices import DeviceReport, DeviceType
from gpufleet.worker.devices.base import DetectionError, run_tool

logger = logging.getLogger(__name__)

ROCM_SMI_ARGS = (
    "--showproductname",
    "--showmeminfo",
    "vram",
    "--showuse",
    "--showtemp",
    "--showuniqueid",
    "--json",
)
_MISSING = {"", "N/A", "NA", "NONE"}
# amd-smi's "MB" are MiB: a 64 GiB MI210 reports 65520 MB.
_UNIT_BYTES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
_CARD_KEY = re.compile(r"card(\d+)")


# --- value helpers --------------------------------------------------------------------------------


def _present(value: object) -> str | None:
    """The reading as text, or None for the "N/A" both tools print for what a GPU does not offer."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return None if text.upper() in _MISSING else text


def _number(value: object) -> float | None:
    """amd-smi wraps readings as ``{"value": 42, "unit": "%"}``; rocm-smi prints strings like "42"."""
    if isinstance(value, dict):
        value = value.get("value")
    text = _present(value)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _bytes(value: object) -> int | None:
    """An amd-smi memory reading in bytes; a bare number is taken to be MiB, amd-smi's default unit."""
    unit = str(value.get("unit", "MB")).upper() if isinstance(value, dict) else "MB"
    amount = _number(value)
    if amount is None or unit not in _UNIT_BYTES:
        return None
    return int(amount * _UNIT_BYTES[unit])


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _name(*candidates: object) -> str:
    """The first real product name: old tools put a PCI id ("0x738c") where the name should be."""
    for candidate in candidates:
        text = _present(candidate)
        if text is not None and not text.lower().startswith("0x"):
            return text
    return "AMD GPU"


def _gfx(value: object) -> str | None:
    text = _present(value)
    return text if text is not None and text.lower().startswith("gfx") else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def load_json(text: str, tool: str) -> Any:
    """The JSON document in a tool's output, skipping the warning lines some versions print before it."""
    lines = text.splitlines()
    error: json.JSONDecodeError | None = None
    for start, line in enumerate(lines):
        if line.lstrip().startswith(("{", "[")):
            try:
                return json.loads("\n".join(lines[start:]))
            except json.JSONDecodeError as exc:
                error = exc
    raise DetectionError(f"{tool} printed no readable JSON" + (f": {error}" if error else ""))


# --- rocm-smi -------------------------------------------------------------------------------------


def parse_rocm_smi(json_text: str) -> list[DeviceReport]:
    """``rocm-smi ... --json`` output: ``{"card0": {...}, "system": {...}}`` with every value a string.

    Key spelling changed between releases ("Card series" in ROCm 5, "Card Series"
    in ROCm 6), so keys are matched without case.
    """
    data = load_json(json_text, "rocm-smi")
    if not isinstance(data, dict):
        raise DetectionError("rocm-smi JSON is not an object of cards")
    reports: list[DeviceReport] = []
    for key, fields in data.items():
        match = _CARD_KEY.fullmatch(str(key))
        if match is None or not isinstance(fields, dict):
            continue  # "system" holds the driver version, not a GPU
        card = {str(name).lower(): value for name, value in fields.items()}
        total = _number(card.get("vram total memory (b)"))
        if total is None:
            raise DetectionError(f"rocm-smi reports no VRAM size for {key}")
        reports.append(
            DeviceReport(
                index=int(match.group(1)),
                type=DeviceType.ROCM,
                vendor="amd",
                name=_name(card.get("card series"), card.get("device name"), card.get("card model")),
                uuid=_present(card.get("unique id")),
                memory_total=int(total),
                memory_used=int(_number(card.get("vram total used memory (b)")) or 0),
                compute_capability=_gfx(card.get("gfx version")),
                utilization=_number(card.get("gpu use (%)")),
                temperature=_first(
                    _number(card.get("temperature (sensor edge) (c)")),
                    _number(card.get("temperature (sensor junction) (c)")),
                ),
            )
        )
    return sorted(reports, key=lambda report: report.index)


# --- amd-smi --------------------------------------------------------------------------------------


def _gpu_entries(json_text: str, tool: str) -> dict[int, dict[str, Any]]:
    """amd-smi's per-GPU objects by GPU id: newer releases wrap the list as ``{"gpu_data": [...]}``."""
    data = load_json(json_text, tool)
    if isinstance(data, dict):
        data = data.get("gpu_data")
    if not isinstance(data, list):
        raise DetectionError(f"{tool} JSON holds no list of GPUs")
    return {entry["gpu"]: entry for entry in data if isinstance(entry, dict) and isinstance(entry.get("gpu"), int)}


def parse_amd_smi(static_json: str, metric_json: str, list_json: str | None = None) -> list[DeviceReport]:
    """``amd-smi static --json`` (names, gfx target, VRAM size) joined with ``amd-smi metric --json``
    (VRAM in use, activity, temperatures) on the GPU id; ``amd-smi list --json``, when given, adds UUIDs.
    """
    static = _gpu_entries(static_json, "amd-smi static")
    metric = _gpu_entries(metric_json, "amd-smi metric")
    listing = _gpu_entries(list_json, "amd-smi list") if list_json is not None else {}
    reports: list[DeviceReport] = []
    for gpu in sorted(static.keys() | metric.keys()):
        fixed, live = static.get(gpu, {}), metric.get(gpu, {})
        asic, memory = _dict(fixed.get("asic")), _dict(live.get("mem_usage"))
        temperature = _dict(live.get("temperature"))
        total = _bytes(memory.get("total_vram"))
        if total is None:
            total = _bytes(_dict(fixed.get("vram")).get("size"))
        if total is None:
            raise DetectionError(f"amd-smi reports no VRAM size for GPU {gpu}")
        reports.append(
            DeviceReport(
                index=gpu,
                type=DeviceType.ROCM,
                vendor="amd",
                name=_name(asic.get("market_name"), _dict(fixed.get("board")).get("product_name")),
                uuid=_present(listing.get(gpu, {}).get("uuid")),
                memory_total=total,
                memory_used=_bytes(memory.get("used_vram")) or 0,
                compute_capability=_gfx(asic.get("target_graphics_version")),
                utilization=_number(_dict(live.get("usage")).get("gfx_activity")),
                temperature=_first(_number(temperature.get("edge")), _number(temperature.get("hotspot"))),
            )
        )
    return reports


# --- running the tools ----------------------------------------------------------------------------


def _run(argv: list[str]) -> str:
    return run_tool(argv, json_despite_failure=True)


def amdgpu_compute_present() -> bool:
    """Whether the amdgpu compute interface exists: ROCm tools are often installed on machines
    without an AMD GPU, and their failure there means "no AMD GPU", not "unreadable AMD GPU".
    """
    return os.path.exists("/dev/kfd")


class AmdDetector:
    """Reports AMD GPUs through amd-smi (else rocm-smi); nothing where neither tool is installed.

    amd-smi's static answer (names, gfx targets, UUIDs) is kept after the first
    success, since each call of the tool costs about a second and those never change.
    """

    name = "amd"

    def __init__(self) -> None:
        self._static: tuple[str, str | None] | None = None

    def detect(self) -> list[DeviceReport]:
        amd_smi, rocm_smi = shutil.which("amd-smi"), shutil.which("rocm-smi")
        try:
            if amd_smi is not None:
                return self._detect_amd_smi(amd_smi)
            if rocm_smi is not None:
                return parse_rocm_smi(_run([rocm_smi, *ROCM_SMI_ARGS]))
        except DetectionError:
            if not amdgpu_compute_present():
                return []
            raise
        return []

    def _detect_amd_smi(self, tool: str) -> list[DeviceReport]:
        if self._static is None:
            static, listing = _run([tool, "static", "--json"]), _uuid_listing(tool)
        else:
            static, listing = self._static
        reports = parse_amd_smi(static, _run([tool, "metric", "--json"]), listing)
        self._static = (static, listing)
        return reports


def _uuid_listing(tool: str) -> str | None:
    """``amd-smi list --json``, or None when it fails: only the UUIDs come from it."""
    try:
        listing = _run([tool, "list", "--json"])
        _gpu_entries(listing, "amd-smi list")
    except DetectionError as exc:
        logger.debug("amd-smi list unusable, reporting AMD GPUs without UUIDs: %s", exc)
        return None
    return listing
