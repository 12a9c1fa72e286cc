"""A wheel of gpufleet carries the built web UI (so ``pip install gpufleet`` serves it without Node.js)
and none of the test support (``testkit``)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gpufleet.server.ui_assets import BUILT_DIR, built_assets

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_web_ui(tmp_path: Path) -> None:
    if not built_assets().available:
        pytest.skip("the web UI is not built (make ui)")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", str(ROOT), "--no-deps", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("gpufleet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    built = {f"gpufleet/ui/{p.relative_to(BUILT_DIR).as_posix()}" for p in BUILT_DIR.rglob("*") if p.is_file()}
    assert "gpufleet/ui/index.html" in built and built <= names
    assert any(name.startswith("gpufleet/ui/assets/") and name.endswith(".js") for name in names)
    assert not [name for name in names if name.startswith(("testkit/", "tests/", "ui/"))]
