"""Reading engine logs: the last lines, then what is appended, across rotation and truncation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpufleet.worker import log_files
from gpufleet.worker.log_files import LogReader


def reader_of(tmp_path: Path, content: bytes) -> LogReader:
    path = tmp_path / "engine.log"
    path.write_bytes(content)
    return LogReader(path)


@pytest.mark.parametrize(
    ("content", "count", "expected"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 10, b"a\nb\nc\n"),  # fewer lines than asked: all of them
        (b"a\nb\nc", 2, b"b\nc"),  # a last line still being written counts
        (b"a\nb\nc\n", 0, b""),
        (b"", 5, b""),
        (b"\n\n\n", 2, b"\n\n"),  # empty lines are lines
    ],
)
def test_tail_gives_the_last_lines(tmp_path: Path, content: bytes, count: int, expected: bytes) -> None:
    reader = reader_of(tmp_path, content)
    assert reader.tail(count) == expected
    assert reader.offset == len(content)
    reader.close()


def test_tail_reads_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_files, "CHUNK", 7)  # many small blocks: lines straddle block edges
    lines = [f"line {i:04d}\n".encode() for i in range(300)]
    reader = reader_of(tmp_path, b"".join(lines))
    assert reader.tail(123) == b"".join(lines[-123:])
    reader.close()


def test_tail_is_capped_in_bytes_and_starts_at_a_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_files, "MAX_TAIL_BYTES", 100)
    lines = [f"{i:09d}\n".encode() for i in range(50)]  # 10 bytes a line
    reader = reader_of(tmp_path, b"".join(lines))
    data = reader.tail(40)
    assert len(data) <= 100 and data.startswith(b"0000000") and data.endswith(lines[-1])
    reader.close()


def test_appended_bytes_follow_the_tail_exactly(tmp_path: Path) -> None:
    reader = reader_of(tmp_path, b"old 1\nold 2\npartial")
    assert reader.tail(1) == b"partial"
    assert reader.appended() == b""
    with reader.path.open("ab") as log:
        log.write(b" line\nnew\n")
    assert reader.appended() == b" line\nnew\n"
    assert reader.appended() == b""
    reader.close()


def test_a_rotated_log_is_read_to_its_end_then_the_new_file_from_its_start(tmp_path: Path) -> None:
    reader = reader_of(tmp_path, b"one\n")
    assert reader.tail(10) == b"one\n"
    with reader.path.open("ab") as log:
        log.write(b"two\n")
    reader.path.rename(tmp_path / "engine.log.1")
    assert reader.appended() == b"two\n"  # still the old file
    assert reader.appended() == b""  # gone, not recreated yet
    (tmp_path / "engine.log").write_bytes(b"three\n")
    assert reader.appended() == b"three\n"
    with reader.path.open("ab") as log:
        log.write(b"four\n")
    assert reader.appended() == b"four\n"
    reader.close()


def test_a_truncated_log_is_read_again_from_its_start(tmp_path: Path) -> None:
    reader = reader_of(tmp_path, b"a long first line\n")
    reader.tail(10)
    reader.path.write_bytes(b"fresh\n")  # copytruncate: same file, shorter
    assert reader.appended() == b"fresh\n"
    reader.close()


def test_a_missing_log_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LogReader(tmp_path / "nothing.log")
