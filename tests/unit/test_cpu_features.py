"""Native llama.cpp builds leave out instruction sets the CPU advertises but cannot run (AMX in
some virtual machines): the build flags follow the probe, and the cache rebuilds when they change."""

from __future__ import annotations

import pytest

from gpufleet.worker.engines import cpu_features
from gpufleet.worker.engines.backends import BuildBackend
from gpufleet.worker.engines.llama_cpp_build import BASE_CMAKE_FLAGS, cmake_flags

SPR = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile amx_int8\n"
ZEN = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"


@pytest.mark.parametrize(("cpuinfo", "advertised"), [(SPR, True), (ZEN, False), ("", False)])
def test_reads_amx_from_cpuinfo(cpuinfo: str, advertised: bool) -> None:
    assert cpu_features.advertises_amx(cpuinfo) is advertised


def test_build_flags_leave_amx_out_only_where_it_cannot_run() -> None:
    flags = cmake_flags(BuildBackend("cuda", ["-DGGML_CUDA=ON"]))
    assert flags[: len(BASE_CMAKE_FLAGS)] == BASE_CMAKE_FLAGS and flags[-1] == "-DGGML_CUDA=ON"
    extra = flags[len(BASE_CMAKE_FLAGS) : -1]
    assert extra == list(cpu_features.unusable_isa_flags())
    if extra:  # this machine advertises AMX and the probe could not run it
        assert extra == [f"-DCMAKE_C_FLAGS={cpu_features.NO_AMX}", f"-DCMAKE_CXX_FLAGS={cpu_features.NO_AMX}"]
        assert not cpu_features.amx_runs()
