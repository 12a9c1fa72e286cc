"""The download cache's pure parts: completeness markers and the byte meter."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gpufleet.worker.downloads.markers import Markers
from gpufleet.worker.downloads.meter import DownloadCancelled, Meter


def test_a_marker_holds_while_its_files_are_unchanged(tmp_path: Path) -> None:
    first, second = tmp_path / "a-00001-of-00002.gguf", tmp_path / "a-00002-of-00002.gguf"
    first.write_bytes(b"x" * 10)
    second.write_bytes(b"y" * 20)
    markers = Markers(tmp_path)
    assert markers.read("huggingface:o/r:*") is None

    markers.write("huggingface:o/r:*", [first, second])

    assert markers.read("huggingface:o/r:*") == [first, second]
    assert markers.read("huggingface:o/r:other") is None
    second.write_bytes(b"y" * 19)  # changed (or half-copied) since: download again
    assert markers.read("huggingface:o/r:*") is None
    second.unlink()
    assert markers.read("huggingface:o/r:*") is None


def test_an_unreadable_marker_means_download_again(tmp_path: Path) -> None:
    markers = Markers(tmp_path)
    (tmp_path / "f.gguf").write_bytes(b"1")
    markers.write("k", [tmp_path / "f.gguf"])
    [marker] = (tmp_path / ".complete").iterdir()
    marker.write_text("{not json")
    assert markers.read("k") is None


def test_the_meter_counts_each_file_within_its_size() -> None:
    meter = Meter({"a": 100, "b": 300})
    meter.add("a", 50)
    assert meter.percent == 12.5
    meter.add("a", 500)  # a retry that counted twice never passes the file's size
    meter.set("b", 100)
    assert meter.percent == 50
    meter.add("b", -100)  # a file started over
    assert meter.percent == 25
    meter.complete("b")
    assert meter.percent == 100


def test_a_cancelled_meter_stops_the_downloading_thread() -> None:
    meter = Meter({"a": 100})
    outcome: list[BaseException] = []

    def download() -> None:
        try:
            while True:
                meter.add("a", 0)
        except DownloadCancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=download)
    thread.start()
    meter.cancel()
    thread.join(timeout=5)
    assert not thread.is_alive() and outcome
    with pytest.raises(DownloadCancelled):
        meter.check()
