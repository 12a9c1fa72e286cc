"""CPU instruction sets a CPU advertises but cannot run, kept out of native llama.cpp builds.

llama.cpp builds with ``-march=native`` (the engine cache is per machine). Some virtual machines
advertise Intel AMX (``amx_tile`` in ``/proc/cpuinfo``) while the hypervisor does not let guests
use it: ggml's AMX matrix kernels then die on their first ``ldtilecfg`` (SIGILL or a general
protection fault) while the model warms up. Before building, a ten-line C probe requests the
tile-data permission from the kernel and runs ``ldtilecfg``; when it fails, the build gets
``-mno-amx-*`` (explicit ``-mno`` flags win over ``-march=native`` in GCC and Clang).
"""

from __future__ import annotations

import logging
import platform
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
AMX_PROBE = r"""
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <immintrin.h>
int main(void) {
    unsigned char config[64];
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0) return 2;
    memset(config, 0, sizeof config);
    config[0] = 1; config[16] = 64; config[48] = 16;  /* palette 1, tile 0: 16 rows of 64 bytes */
    _tile_loadconfig(config);
    _tile_zero(0);
    _tile_release();
    return 0;
}
"""


def advertises_amx(cpuinfo: str) -> bool:
    return any(line.startswith("flags") and " amx_tile" in line for line in cpuinfo.splitlines())


@lru_cache(maxsize=1)
def amx_runs() -> bool:
    """Whether AMX instructions run here (compiled with the C compiler llama.cpp's build will use)."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return False
    with tempfile.TemporaryDirectory(prefix="gpufleet-amx-") as work:
        source, binary = Path(work) / "probe.c", Path(work) / "probe"
        source.write_text(AMX_PROBE)
        try:
            built = subprocess.run(
                [compiler, "-O1", "-mamx-tile", str(source), "-o", str(binary)], capture_output=True, timeout=60
            )
            if built.returncode != 0:
                return False
            return subprocess.run([str(binary)], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


@lru_cache(maxsize=1)
def unusable_isa_flags() -> tuple[str, ...]:
    """CMake flags that keep a native build off instruction sets this CPU advertises but cannot run."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return ()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    if not advertises_amx(cpuinfo) or amx_runs():
        return ()
    logger.warning("this CPU advertises AMX but cannot run it (a virtual machine?): building llama.cpp without AMX")
    return (f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}")
