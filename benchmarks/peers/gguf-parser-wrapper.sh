#!/usr/bin/env bash
# Run gguf-parser v0.11 (bundled in the gpustack==0.3.0 wheel) with the argv GPUStack 2.3.0 builds.
#
# GPUStack 2.3.0 downloads a newer gguf-parser from GitHub at run time, which cannot
# happen offline. v0.11 estimates the same way for llama.cpp but knows fewer options and
# spells a few differently. This translates:
#   --flag=value                       -> --flag value          (v0.11 value flags)
#   --boolflag=true / --boolflag=false -> --boolflag / dropped
#   --mmap=false                       -> --no-mmap             (--mmap=true: dropped)
#   --skip-range-download-detect       -> --skip-rang-download-detect (v0.11's spelling)
#   options v0.11 lacks (--max-projected-cache, --swa-full, --image-*, --override-tensor,
#   --visual-max-image-size, --header, ...) -> dropped; none changes a text-LLM estimate
#   at the defaults GPUStack passes.
# Bash rather than Python: GPUStack runs the parser up to once per worker per decision,
# and a Python start-up (~18 ms) would be charged to its scheduler.
#
# Binary: $GGUF_PARSER_BIN, else ${GPUFLEET_CACHE_DIR:-~/.cache/gpufleet}/peers/gguf-parser-gpustack-0.3.0
# GGUF_PARSER_WRAPPER_LOG=/path appends each argv and its translation there.
BIN="${GGUF_PARSER_BIN:-${GPUFLEET_CACHE_DIR:-$HOME/.cache/gpufleet}/peers/gguf-parser-gpustack-0.3.0}"

is_bool() {
    case "$1" in
        --debug|--flash-attention|--flash-attn|--fa|--in-max-ctx-size|--no-kv-offload|--nkvo|\
        --no-mmap|--skip-cache|--skip-dns-cache|--skip-proxy|--skip-tls-verify|\
        --skip-rang-download-detect|--in-mib|--in-short|--json|--json-pretty|--raw|\
        --skip-architecture|--skip-estimate|--skip-metadata|--skip-tokenizer|--ol-usage) return 0 ;;
    esac
    return 1
}
is_value() {
    case "$1" in
        --batch-size|-b|--cache-type-k|--ctk|--cache-type-v|--ctv|--ctx-size|-c|--device-metric|\
        --gpu-layers|--ngl|--n-gpu-layers|--gpu-layers-draft|--ngld|--n-gpu-layers-draft|\
        --gpu-layers-step|--main-gpu|--mg|--parallel-size|--parallel|--np|--platform-footprint|\
        --rpc|--split-mode|--sm|--tensor-split|--ts|--ubatch-size|--ub|--cache-expiration|\
        --cache-path|--control-vector-path|--control-vector|--draft-path|--model-draft|--md|\
        --lora-path|--lora|--mmproj-path|--mmproj|--path|--model|-m|--control-vector-url|\
        --draft-url|--lora-url|--mmproj-url|--token|--url|--model-url|--mu|\
        --hf-control-vector-file|--hf-draft-file|--hf-draft-repo|--hf-file|--hff|--hf-lora-file|\
        --hf-mmproj-file|--hf-repo|--hfr|--hf-token|--hft|--ms-control-vector-file|\
        --ms-draft-file|--ms-draft-repo|--ms-file|--ms-lora-file|--ms-mmproj-file|--ms-repo|\
        --ms-token|--ol-base-url|--ol-model|--raw-output) return 0 ;;
    esac
    return 1
}
is_true() { case "${1,,}" in true|1|yes|on) return 0 ;; esac; return 1; }

in=("$@")
out=()
n=${#in[@]}
i=0
while [ "$i" -lt "$n" ]; do
    arg="${in[$i]}"
    i=$((i + 1))
    case "$arg" in
        -*) ;;
        *) out+=("$arg"); continue ;;
    esac
    if [[ "$arg" == *=* ]]; then
        name="${arg%%=*}"; value="${arg#*=}"; has_eq=1
    else
        name="$arg"; value=""; has_eq=0
    fi
    [ "$name" = "--skip-range-download-detect" ] && name="--skip-rang-download-detect"
    if [ "$name" = "--mmap" ]; then
        if [ "$has_eq" = 1 ] && ! is_true "$value"; then out+=("--no-mmap"); fi
        continue
    fi
    if is_bool "$name"; then
        if [ "$has_eq" = 0 ] || is_true "$value"; then out+=("$name"); fi
        continue
    fi
    if is_value "$name"; then
        if [ "$has_eq" = 1 ]; then
            out+=("$name" "$value")
        elif [ "$i" -lt "$n" ]; then
            out+=("$name" "${in[$i]}"); i=$((i + 1))
        fi
        continue
    fi
    # Unknown to v0.11: drop it, and its value when given as a separate word.
    if [ "$has_eq" = 0 ] && [ "$i" -lt "$n" ] && [[ "${in[$i]}" != --* ]]; then
        i=$((i + 1))
    fi
done

if [ -n "${GGUF_PARSER_WRAPPER_LOG:-}" ]; then
    printf '%s\n  -> %s\n' "$*" "${out[*]}" >> "$GGUF_PARSER_WRAPPER_LOG"
fi
exec "$BIN" "${out[@]}"
