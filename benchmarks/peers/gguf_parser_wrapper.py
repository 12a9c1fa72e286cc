#!/usr/bin/env python3
"""Run gguf-parser v0.11 (bundled in the gpustack==0.3.0 wheel) with the argv GPUStack 2.3.0 builds.

GPUStack 2.3.0 downloads a newer gguf-parser from GitHub at run time, which cannot be
done offline. v0.11 estimates the same way for llama.cpp but knows fewer options and
spells some differently. This translates:

    --flag=true / --flag=false for boolean flags  -> --flag / (dropped)
    --mmap=false                                   -> --no-mmap   (--mmap=true: dropped)
    options v0.11 lacks (SWA, projector cache, stable-diffusion image options,
    override-tensor, headers, ...)                 -> dropped (none affects a text LLM
                                                      estimate at the defaults GPUStack passes)

and passes everything else through unchanged. The binary is taken from $GGUF_PARSER_BIN,
else ${GPUFLEET_CACHE_DIR:-~/.cache/gpufleet}/peers/gguf-parser-gpustack-0.3.0.
Set GGUF_PARSER_WRAPPER_LOG=/path to append each translated argv there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# v0.11 boolean flags (no value).
BOOL_FLAGS = {
    "--debug",
    "--flash-attention", "--flash-attn", "--fa",
    "--in-max-ctx-size",
    "--no-kv-offload", "--nkvo",
    "--no-mmap",
    "--skip-cache", "--skip-dns-cache", "--skip-proxy", "--skip-tls-verify",
    "--in-mib", "--in-short", "--json", "--json-pretty", "--raw",
    "--skip-architecture", "--skip-estimate", "--skip-metadata", "--skip-tokenizer",
    "--ol-usage",
}
# v0.11 flags that take a value.
VALUE_FLAGS = {
    "--batch-size", "-b", "--cache-type-k", "--ctk", "--cache-type-v", "--ctv",
    "--ctx-size", "-c", "--device-metric", "--gpu-layers", "--ngl", "--n-gpu-layers",
    "--gpu-layers-draft", "--ngld", "--n-gpu-layers-draft", "--gpu-layers-step",
    "--main-gpu", "--mg", "--parallel-size", "--parallel", "--np", "--platform-footprint",
    "--rpc", "--split-mode", "--sm", "--tensor-split", "--ts", "--ubatch-size", "--ub",
    "--cache-expiration", "--cache-path",
    "--control-vector-path", "--control-vector", "--draft-path", "--model-draft", "--md",
    "--lora-path", "--lora", "--mmproj-path", "--mmproj", "--path", "--model", "-m",
    "--control-vector-url", "--draft-url", "--lora-url", "--mmproj-url", "--token",
    "--url", "--model-url", "--mu",
    "--hf-control-vector-file", "--hf-draft-file", "--hf-draft-repo", "--hf-file", "--hff",
    "--hf-lora-file", "--hf-mmproj-file", "--hf-repo", "--hfr", "--hf-token", "--hft",
    "--ms-control-vector-file", "--ms-draft-file", "--ms-draft-repo", "--ms-file",
    "--ms-lora-file", "--ms-mmproj-file", "--ms-repo", "--ms-token",
    "--ol-base-url", "--ol-model", "--raw-output",
}
RENAMES = {"--skip-range-download-detect": "--skip-rang-download-detect"}
BOOL_FLAGS.add("--skip-rang-download-detect")
TRUE = {"true", "1", "yes", "on"}


def binary() -> str:
    env = os.environ.get("GGUF_PARSER_BIN")
    if env:
        return env
    cache = os.environ.get("GPUFLEET_CACHE_DIR") or str(Path.home() / ".cache" / "gpufleet")
    return str(Path(cache) / "peers" / "gguf-parser-gpustack-0.3.0")


def translate(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-"):
            out.append(arg)  # stray positional: pass through
            continue
        name, eq, value = arg.partition("=")
        name = RENAMES.get(name, name)
        if name == "--mmap":
            if eq and value.lower() not in TRUE:
                out.append("--no-mmap")
            continue
        if name in BOOL_FLAGS:
            if not eq or value.lower() in TRUE:
                out.append(name)
            continue
        if name in VALUE_FLAGS:
            if eq:
                out += [name, value]
            elif i < len(argv):
                out += [name, argv[i]]
                i += 1
            continue
        # Unknown to v0.11: drop it, and its value when given as a separate word.
        if not eq and i < len(argv) and not argv[i].startswith("--"):
            i += 1
    return out


def main() -> None:
    args = translate(sys.argv[1:])
    log = os.environ.get("GGUF_PARSER_WRAPPER_LOG")
    if log:
        with open(log, "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\n  -> " + " ".join(args) + "\n")
    exe = binary()
    os.execv(exe, [exe, *args])


if __name__ == "__main__":
    main()
