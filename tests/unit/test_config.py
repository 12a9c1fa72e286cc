"""Settings: flag parsing and derived values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gpufleet.common.labels import parse_labels
from gpufleet.common.units import GiB
from gpufleet.config import Settings, parse_system_reserved


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {}),
        ("zone=eu", {"zone": "eu"}),
        ("zone=eu, gpu=h100 ,", {"zone": "eu", "gpu": "h100"}),
        ("team/ml=a.b-c", {"team/ml": "a.b-c"}),
        ("empty=", {"empty": ""}),
    ],
)
def test_labels(raw: str, expected: dict[str, str]) -> None:
    assert parse_labels(raw) == expected


@pytest.mark.parametrize("raw", ["zone", "=x", "a b=c", "k=v w", "-k=v"])
def test_bad_labels(raw: str) -> None:
    with pytest.raises(ValueError, match="label"):
        parse_labels(raw)


def test_system_reserved_is_gib_in_bytes_out() -> None:
    # Defaults (GPUStack's): 2 GiB of RAM, 1 GiB of VRAM per GPU; one key given keeps the other's default.
    assert parse_system_reserved(None) == {"ram": 2 * GiB, "vram": GiB}
    assert parse_system_reserved('{"ram": 0.5}') == {"ram": GiB // 2, "vram": GiB}
    assert Settings().system_reserved == {"ram": 2 * GiB, "vram": GiB}
    assert Settings(system_reserved='{"ram": 4, "vram": 0}').system_reserved == {"ram": 4 * GiB, "vram": 0}


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPUFLEET_PORT", "9090")
    monkeypatch.setenv("GPUFLEET_LABELS", "zone=us")
    monkeypatch.setenv("GPUFLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GPUFLEET_DISABLE_WORKER", "true")
    settings = Settings()
    assert (settings.port, settings.labels, settings.data_dir, settings.disable_worker) == (
        9090,
        {"zone": "us"},
        tmp_path,
        True,
    )
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'gpufleet.db'}"


def test_server_urls_and_roles() -> None:
    embedded = Settings(host="0.0.0.0", port=8080)
    assert embedded.server_urls == ["http://127.0.0.1:8080"]
    assert embedded.runs_server and embedded.runs_worker
    worker = Settings(server_url="http://a:8080, http://b:8080/", token="t")
    assert worker.server_urls == ["http://a:8080", "http://b:8080"]
    assert not worker.runs_server and worker.runs_worker
    with pytest.raises(ValidationError, match="nothing to run"):
        Settings(server_url="http://a:8080", token="t", disable_worker=True)
