"""Finding llama.cpp binaries: a given llama-server without an RPC server next to it serves, and says
what is missing only when an RPC part needs one (no build from source just for that)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gpufleet.worker.engines.base import EngineUnavailable
from gpufleet.worker.engines.binaries import find
from gpufleet.worker.engines.llama_cpp import rpc_launch


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 'version: 1 (test)'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_given_server_alone_is_used_and_rpc_parts_say_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    server = executable(tmp_path / "bin" / "llama-server")
    found = find(server)
    assert found is not None and found.server == server and found.rpc_server is None
    with pytest.raises(EngineUnavailable, match="--rpc-server-path"):
        rpc_launch(found, host="127.0.0.1", port=41000, device_ids=["a:cpu:0"], threads=2)


@pytest.mark.parametrize("name", ["ggml-rpc-server", "rpc-server"])  # newer and older llama.cpp
def test_an_rpc_server_next_to_the_given_server_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    server = executable(tmp_path / "bin" / "llama-server")
    rpc = executable(tmp_path / "bin" / name)
    found = find(server)
    assert found is not None and found.rpc_server == rpc
    assert rpc_launch(found, host="127.0.0.1", port=41000, device_ids=["a:cpu:0"], threads=2).command[0] == str(rpc)


def test_a_given_path_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="not an executable file"):
        find(tmp_path / "missing-llama-server")
