#!/usr/bin/env bash
# Make a trimmed copy of the llama-cpp-python sdist that gpufleet's installer builds llama.cpp from.
#
# Why: the sdist is ~73 MB, over the 64 MiB a device call may carry, and the device machine has no
# network to download it. The installer (gpufleet/worker/engines/llama_cpp_build.py) uses
# <cache>/downloads/llama_cpp_python-<version>.tar.gz when it exists, without a hash, so a trimmed
# archive under the same name in a carried cache is built exactly like the full one.
#
# Kept: vendor/llama.cpp with its CMake files, ggml (include, cmake, the CPU, CUDA and RPC backends),
# src, common, include, tools (server, rpc, mtmd and the small tools its CMakeLists adds
# unconditionally; tools/ui, whose build step embeds its sources), vendor/, scripts/*.cmake. Dropped: models (vocab GGUFs), docs, media, tests, examples, benches,
# the Python packaging and every other ggml backend.
#
# usage: benchmarks/gpu_truth_trim_source.sh FULL_SDIST.tar.gz OUT_DIR
set -euo pipefail
full=${1:?the full llama_cpp_python-<version>.tar.gz}
out=${2:?output directory (e.g. .gpu-carry/cache/downloads)}
name=$(basename "$full" .tar.gz)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xzf "$full" -C "$work" "$name/vendor/llama.cpp"
ll="$work/$name/vendor/llama.cpp"
rm -rf "$ll"/{models,docs,media,tests,examples,pocs,benches,gguf-py,conversion,ci,.github,.devops,app,skills,requirements,grammars}
rm -rf "$ll"/tools/ui/tests
find "$ll/scripts" -type f ! -name "*.cmake" -delete  # tools/ui runs scripts/ui-assets.cmake at build time
for backend in "$ll"/ggml/src/ggml-*/; do
  case "$(basename "$backend")" in ggml-cpu | ggml-cuda | ggml-rpc) ;; *) rm -rf "$backend" ;; esac
done
mkdir -p "$out"
tar czf "$out/$name.tar.gz" -C "$work" "$name"
du -h "$out/$name.tar.gz"
