#!/usr/bin/env bash
# Issue 16 on a lent NVIDIA GPU machine: build the CUDA llama.cpp through gpufleet's own installer,
# then check detection, placement and the memory estimate against what CUDA allocates
# (benchmarks/gpu_truth.py). Idempotent: a build already in $GPUFLEET_CACHE_DIR is reused, so a
# second call on the same (warm) machine goes straight to the checks.
#
#   benchmarks/gpu_truth.sh build|check|all
#
# Carried into the call (git-ignored, named in the device tool's `carry`):
#   .whl/        wheels the image lacks (benchmarks/gpu_truth_wheels.py checks the set)
#   .gpu-carry/  cache/downloads/llama_cpp_python-<version>.tar.gz, the trimmed llama.cpp source
#                (benchmarks/gpu_truth_trim_source.sh), which the installer takes as its download
# Everything worth keeping goes to $OUT (the device tool brings it back): gpu_truth.log,
# nvml.json, gpu_truth.json, instances.log, gpufleet.log, env-check.txt.
set -uo pipefail
phase=${1:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
export OUT=${OUT:-$root/benchmarks/results/gpu-truth}
export GPUFLEET_CACHE_DIR=${GPUFLEET_CACHE_DIR:-/tmp/gf-cache}
export PYTHONUNBUFFERED=1 LLAMA_TELEMETRY=0 DO_NOT_TRACK=1
mkdir -p "$OUT" "$GPUFLEET_CACHE_DIR/downloads"
exec > >(tee -a "$OUT/gpu_truth.log") 2>&1
t0=$(date +%s)
say() { echo "[gpu_truth +$(($(date +%s) - t0))s] $*"; }

# Python packages: the carried wheels into /tmp/site, once per machine.
if [ -d .whl ] && [ ! -f /tmp/site/.gpu-truth-done ]; then
  say "installing $(ls .whl/*.whl | wc -l) wheels"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && touch /tmp/site/.gpu-truth-done || { say "wheel install failed"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$root${PYTHONPATH:+:$PYTHONPATH}
python3 benchmarks/gpu_truth_wheels.py --installed >"$OUT/env-check.txt" 2>&1
say "environment check: $(tail -1 "$OUT/env-check.txt") (details in env-check.txt; not fatal)"
python3 -c "import gpufleet.cli, fastapi, sqlalchemy, gguf" || { say "gpufleet does not import"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,memory.used,uuid,compute_cap,driver_version --format=csv || true
python3 -m benchmarks.gpu_truth nvml --out "$OUT/nvml.json" || say "NVML dump failed"

# cuBLAS and the driver library for CMake, where the toolkit lacks them: the image's PyTorch
# carries cuBLAS as a wheel (nvidia/cu13), which a toolkit with only nvcc does not have.
cuda_shim() {
  local toolkit shim=/tmp/gf-cuda-shim
  toolkit=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  mkdir -p $shim/include $shim/lib
  if ! find "$toolkit"/ /usr/local/cuda*/ -name cublas_v2.h 2>/dev/null | grep -q .; then
    local header lib
    header=$(python3 -c "import nvidia, pathlib; print(next(p for d in nvidia.__path__ for p in pathlib.Path(d).rglob('cublas_v2.h')))")
    lib=$(dirname "$(python3 -c "import nvidia, pathlib; print(next(p for d in nvidia.__path__ for p in pathlib.Path(d).rglob('libcublas.so.*')))")")
    say "the toolkit in $toolkit has no cuBLAS: using $(dirname "$header") and $lib"
    ln -sf "$(dirname "$header")"/* $shim/include/
    for l in cublas cublasLt; do ln -sf "$(ls "$lib"/lib$l.so.* | head -1)" $shim/lib/lib$l.so; done
    export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  if ! find "$toolkit"/ /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu/ /usr/lib64/ -name 'libcuda.so' 2>/dev/null | grep -q .; then
    local driver
    driver=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
    [ -z "$driver" ] && driver=$(find /usr/local/nvidia /usr/lib* -name 'libcuda.so.1' 2>/dev/null | head -1)
    say "no libcuda.so for CMake: linking $driver"
    [ -n "$driver" ] && ln -sf "$driver" $shim/lib/libcuda.so
  fi
  export CPATH=$shim/include${CPATH:+:$CPATH} CMAKE_LIBRARY_PATH=$shim/lib LIBRARY_PATH=$shim/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
}

build() {
  cp -n .gpu-carry/cache/downloads/*.tar.gz "$GPUFLEET_CACHE_DIR/downloads/" 2>/dev/null
  cuda_shim
  say "gpufleet engines install llama.cpp (backend as detected, $(nproc) jobs)"
  python3 -m gpufleet engines install llama.cpp || { say "build failed"; return 1; }
  python3 -m gpufleet engines list
  say "build done"
}

check() {
  cuda_shim  # the runtime side: LD_LIBRARY_PATH to the cuBLAS the build linked
  ldd "$GPUFLEET_CACHE_DIR"/engines/llama.cpp/*/cuda/bin/llama-server 2>/dev/null | grep -E "cublas|cudart|cuda\.so|not found"
  say "checks: benchmarks/gpu_truth.py run"
  python3 -m benchmarks.gpu_truth run --out "$OUT" --work /tmp/gpu-truth
  local rc=$?
  nvidia-smi || true
  say "checks done (exit $rc)"
  return $rc
}

case $phase in
  build) build ;;
  check) check ;;
  all) build && check ;;
  *) echo "usage: $0 build|check|all" >&2; exit 2 ;;
esac
