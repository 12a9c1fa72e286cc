"""The estimate: bytes per device (host RAM first, then each offload device) for one placement.

``Estimator(info, config)`` does the work that depends only on the model and the run
settings once (KV bytes per layer, compute peaks per layer); ``estimate(placement)`` then
assigns layers to devices exactly as llama.cpp does (``llama_model::load_tensors``) and adds
up, so the scheduler can try hundreds of placements per decision.

Per device: ``weights`` (tensors of the layers it holds; the host also holds the input
embeddings and, with mmap, maps the rest of the file without keeping it), ``kv_cache``,
``compute`` (graph scratch; on the host also llama.cpp's output buffer) and ``overhead``
(the process, or the device runtime). ``ram`` is the host total; ``vram`` one total per device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gpufleet.common.units import MiB
from gpufleet.estimate.compute import (
    GraphShape,
    cpu_work_buffer,
    embeddings_bytes,
    inputs_bytes,
    layer_peak,
    output_peak,
)
from gpufleet.estimate.config import DEFAULT_CTX_CAP, Placement, RunConfig, cache_type_id, row_bytes
from gpufleet.estimate.model_info import ModelInfo, ModelKind

HOST = -1
# Resident memory of a llama-server process beyond its buffers: the binary, heap and threads (16 MiB),
# plus per vocabulary entry what its tokenizer and sampling keep (about 96 bytes), about as much again
# when the output layer runs on the CPU. Fitted to the residuals of benchmarks/estimate_accuracy.py
# (vocabularies of 30k to 262k tokens); a ggml-rpc-server serving one device needs about 6 MiB.
HOST_BASE_OVERHEAD = 16 * MiB
HOST_OVERHEAD_PER_TOKEN = 96
RPC_OVERHEAD = 8 * MiB
# What a GPU's runtime takes beyond llama.cpp's buffers (CUDA context, cuBLAS/cuBLASLt handles and
# workspace, the kernels' module images, ggml-cuda's memory pool). Measured with NVML on an NVIDIA H200
# (compute capability 9.0, 132 SMs, CUDA 13.0, driver 580.159): a llama-server process used 587.8,
# 588.1 and 589.6 MiB beyond its CUDA0 model, KV and compute buffers for three models (llama 1B q8_0,
# qwen2 0.5B f16, qwen3 8B q4_0 half offloaded; benchmarks/gpu_truth.py, BENCHMARKS.md "CUDA").
# Smaller GPUs (fewer SMs, a smaller context) need less, so the figure is conservative there; ROCm
# and Vulkan are assumed alike until measured.
GPU_OVERHEAD = 590 * MiB
# Host memory a process that uses a GPU maps and keeps beyond a CPU-only llama-server's: the CUDA
# runtime's host side (libcudart, libcublas/cublasLt and the driver's own mappings and allocations).
# Measured on the same H200 run: host RSS was 323.7 and 328.6 MiB above the CPU-only estimate of the
# two fully offloaded models. Counted once per process with at least one local GPU; ROCm, Vulkan and
# Metal are assumed alike until measured.
GPU_HOST_OVERHEAD = 325 * MiB
PIPELINE_COPIES = 4  # GGML_SCHED_MAX_COPIES
# Weight types the CPU backend re-packs into a buffer of its own (ggml-cpu/repack.cpp), with the row
# multiple the interleave needs: on x86 with AVX2 Q4_0, Q4_K, IQ4_NL; on ARM with dot-product/i8mm
# also Q5_K, Q6_K and Q8_0. Type ids are ggml's. Only where no local GPU offers a host buffer type:
# see ``cpu_weights_repacked``.
REPACK_ROWS = {
    "amd64": {2: 8, 12: 8, 20: 8},
    "arm64": {2: 4, 8: 4, 12: 8, 13: 8, 14: 8, 20: 4},
}


def pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def cpu_weights_repacked(placement: Placement) -> bool:
    """Whether llama.cpp re-packs the weights the CPU keeps (the layers not offloaded) for this placement.

    ``make_cpu_buft_list`` (src/llama-model.cpp) lists the buffer types a CPU-resident weight may use,
    in order: accelerators, then the *host buffer type of the first model device that has one*
    (CUDA_Host for CUDA and ROCm, Vulkan_Host; Metal and RPC have none), then the CPU's extra
    (repack) types, then the plain CPU type. ``select_weight_buft`` takes the first the device
    supports for the weight's op, so with a CUDA device in the process every matrix it can multiply
    lands in CUDA_Host, never in CPU_REPACK; with mmap the loader then swaps the host buffer for the
    plain CPU type ("avoid using a host buffer when using mmap"), which maps the file: the
    "CPU_Mapped model buffer". This holds even at ``-ngl 0``: llama.cpp puts every visible GPU in the
    model's devices. gpufleet hides every GPU from a CPU placement (``CUDA_VISIBLE_DEVICES=""``), so
    there, with only RPC servers, or on Apple Silicon (Metal, ``unified_memory``), the CPU's list
    starts with the repack type, as in a CPU-only build.
    """
    return placement.gpus == 0 or placement.unified_memory


@dataclass(frozen=True)
class DeviceUsage:
    name: str
    weights: int = 0
    kv_cache: int = 0
    compute: int = 0
    overhead: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.overhead


@dataclass(frozen=True)
class Estimate:
    architecture: str
    kind: str
    context_size: int
    layers: int  # offloadable: blocks + output
    offloaded_layers: int
    host: DeviceUsage
    devices: list[DeviceUsage]
    warnings: list[str] = field(default_factory=list)

    @property
    def ram(self) -> int:
        return self.host.total

    @property
    def vram(self) -> list[int]:
        return [device.total for device in self.devices]

    def as_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "kind": self.kind,
            "context_size": self.context_size,
            "layers": self.layers,
            "offloaded_layers": self.offloaded_layers,
            "ram": self.ram,
            "vram": self.vram,
            "breakdown": [asdict(self.host) | {"total": self.host.total}]
            + [asdict(d) | {"total": d.total} for d in self.devices],
            "warnings": self.warnings,
        }


class Estimator:
    def __init__(self, info: ModelInfo, config: RunConfig | None = None) -> None:
        self.info = info
        self.config = config or RunConfig()
        self.warnings: list[str] = list(info.notes)
        self.n_ctx, self.n_seq = self._context()
        self.shape = self._graph_shape()
        self.kv_per_layer = self._kv_per_layer()
        self.layer_peaks = [layer_peak(info, il, self.shape) for il in range(info.n_layer)]
        self.output_peak = output_peak(info, self.shape)
        self.cpu_work = cpu_work_buffer(info, self.shape)
        # Per-layer figures as arrays: estimate() is called for many placements and must stay cheap.
        self._layer_bytes = np.asarray(info.layer_bytes, dtype=np.float64)
        self._kv = np.asarray(self.kv_per_layer, dtype=np.float64)
        self._peaks = np.asarray(self.layer_peaks, dtype=np.int64)
        self._swa = np.asarray(info.swa_layers, dtype=bool)
        table = info.tensors
        self._single_file = not table.shard.any()
        self._repack_mask = table.matrix & np.asarray(
            [self._repacked(int(t), int(r)) for t, r in zip(table.ggml_type, table.rows, strict=True)], dtype=bool
        )

    # --- what depends only on the model and the run settings ----------------------------------
    def _context(self) -> tuple[int, int]:
        info, config = self.info, self.config
        requested = config.ctx_size
        trained = info.n_ctx_train
        if requested is None:
            n_ctx = min(trained, DEFAULT_CTX_CAP) if trained else DEFAULT_CTX_CAP
        elif trained and requested > trained:
            self.warnings.append(
                f"context size {requested} is more than the model was trained for ({trained}): capped at {trained}"
            )
            n_ctx = trained
        else:
            n_ctx = requested
        n_seq = config.parallel
        n_ctx = pad(n_ctx, 256)
        if not config.kv_unified:
            n_ctx_seq = pad(n_ctx // n_seq, 256)
            n_ctx = n_ctx_seq * n_seq
        return n_ctx, n_seq

    @property
    def n_ctx_seq(self) -> int:
        return self.n_ctx if self.config.kv_unified else self.n_ctx // self.n_seq

    @property
    def n_stream(self) -> int:
        return 1 if self.config.kv_unified else self.n_seq

    def _swa_cells(self) -> int:
        info, config = self.info, self.config
        if info.n_swa == 0 or config.swa_full:
            return self.n_ctx_seq
        return pad(min(self.n_ctx_seq, info.n_swa * (self.n_seq if config.kv_unified else 1) + config.ubatch), 256)

    def _graph_shape(self) -> GraphShape:
        n_tokens = min(self.n_ctx, self.config.ubatch)
        # llama-server asks for one output per slot; embedding models for every token of a batch.
        n_outputs = min(n_tokens, self.n_seq if self.info.kind == ModelKind.LLM else self.config.batch)
        return GraphShape(
            n_tokens=n_tokens,
            n_outputs=n_outputs,
            n_kv=self.n_ctx_seq,
            n_kv_swa=self._swa_cells(),
            n_stream=self.n_stream,
            flash_attn=self.config.flash_attn,
        )

    def _kv_per_layer(self) -> list[int]:
        info = self.info
        if not info.has_kv_cache:
            return [0] * info.n_layer
        type_k, type_v = cache_type_id(self.config.cache_type_k), cache_type_id(self.config.cache_type_v)
        v_trans = not self.config.flash_attn
        v_max = max(info.n_embd_v_gqa(il) for il in range(info.n_layer))
        swa_cells = self._swa_cells()
        result = []
        for il in range(info.n_layer):
            if info.n_head_kv[il] == 0:
                result.append(0)
                continue
            cells = (swa_cells if info.swa_layers[il] else self.n_ctx_seq) * self.n_stream
            v_width = v_max if v_trans else info.n_embd_v_gqa(il)
            result.append(cells * (row_bytes(type_k, info.n_embd_k_gqa(il)) + row_bytes(type_v, v_width)))
        return result

    def output_buffer(self) -> int:
        """llama.cpp's host output buffer, at its largest.

        Decoders under llama-server produce one output per sequence: logits for ``n_seq`` rows. For
        embedding and reranking, every token of a batch is an output, and llama.cpp allocates logits
        *and* embeddings for each (it grows the buffer to the largest batch it has seen and keeps it):
        ``(n_vocab + n_embd) × min(n_batch, n_ctx) × 4`` bytes, nearly 2 GiB for a 250 000-token
        reranker at the default batch of 2048.
        """
        info = self.info
        if info.kind == ModelKind.LLM:
            return info.n_vocab * self.n_seq * 4
        return (info.n_vocab + info.n_embd) * min(self.config.batch, self.n_ctx) * 4

    # --- per placement ------------------------------------------------------------------------
    def layer_devices(self, placement: Placement) -> np.ndarray:
        """Device index per offloadable layer (blocks, then output): HOST (-1) or 0..devices-1.

        The same arithmetic as llama.cpp, in float32: cumulative split fractions, then
        ``upper_bound(splits, float(il - i_gpu_start) / act_gpu_layers)``.
        """
        n_layer = self.info.n_layer
        n_dev = placement.devices
        result = np.full(n_layer + 1, HOST, dtype=np.int64)
        if n_dev == 0:
            return result
        ngl = n_layer + 1 if placement.gpu_layers is None else placement.gpu_layers
        i_gpu_start = max(n_layer + 1 - ngl, 0)
        act = min(ngl, n_layer + 1)
        if act <= 0:
            return result
        shares = placement.tensor_split or tuple(1.0 for _ in range(n_dev))
        splits = np.cumsum(np.asarray(shares, dtype=np.float32), dtype=np.float32)
        splits = (splits / splits[-1]).astype(np.float32)
        offloaded = np.arange(i_gpu_start, min(i_gpu_start + act, n_layer + 1))
        position = (offloaded - i_gpu_start).astype(np.float32) / np.float32(act)
        result[offloaded] = np.minimum(np.searchsorted(splits, position, side="right"), n_dev - 1)
        return result

    def estimate(self, placement: Placement | None = None) -> Estimate:
        placement = placement or Placement(gpus=0)
        info = self.info
        n_dev = placement.devices
        layer_dev = self.layer_devices(placement)
        slot = layer_dev[:-1] + 1  # 0 = host, 1.. = devices
        output_slot = int(layer_dev[-1]) + 1
        size = n_dev + 1
        weights = np.bincount(slot, weights=self._layer_bytes, minlength=size).astype(np.int64)
        kv = np.bincount(slot, weights=self._kv, minlength=size).astype(np.int64)
        peak = np.zeros(size, dtype=np.int64)
        np.maximum.at(peak, slot, self._peaks)
        has_swa = np.bincount(slot, weights=self._swa, minlength=size) > 0
        has_full = np.bincount(slot, weights=~self._swa, minlength=size) > 0

        repack = cpu_weights_repacked(placement)
        weights[0] = self._host_weights(layer_dev, repack)
        weights[output_slot] += info.output_bytes if output_slot != 0 else 0
        tied_copy = repack and self._repacked(info.token_embd_type, info.n_vocab)
        if info.tied_output and (output_slot != 0 or tied_copy):
            weights[output_slot] += info.token_embd_bytes
        peak[output_slot] = max(peak[output_slot], self.output_peak)
        holds_blocks = np.bincount(slot, minlength=size) > 0
        holds = holds_blocks.copy()
        holds[output_slot] = True

        # Pipeline parallelism (several devices, everything offloaded): llama.cpp keeps 4 copies of every
        # tensor a device receives from another, so consecutive batches can overlap.
        copies = PIPELINE_COPIES if n_dev > 1 and bool(np.all(layer_dev != HOST)) else 1
        activation = info.n_embd * self.shape.n_tokens * 4
        cpu_backed = [True] + [placement.rpc_on_cpu and i < placement.rpc for i in range(n_dev)]
        compute = np.zeros(size, dtype=np.int64)
        for index in range(1, size):
            if not holds[index]:
                continue
            if not holds_blocks[index]:  # only the output layer: it receives one row per output
                compute[index] = copies * info.n_embd * self.shape.n_outputs * 4 + peak[index]
                continue
            received = inputs_bytes(info, self.shape, bool(has_swa[index]), bool(has_full[index])) + activation
            compute[index] = copies * received + peak[index] + (self.cpu_work if cpu_backed[index] else 0)
        any_swa, any_full = bool(self._swa.any()), bool((~self._swa).any())
        host_inputs = inputs_bytes(info, self.shape, any_swa, any_full) + embeddings_bytes(info, self.shape)
        compute[0] = copies * host_inputs + peak[0] + self.output_buffer() + (self.cpu_work if holds_blocks[0] else 0)

        logits_on_host = output_slot == 0 and info.kind == ModelKind.LLM
        vocab_overhead = HOST_OVERHEAD_PER_TOKEN * info.n_vocab * (2 if logits_on_host else 1)
        runtime = GPU_HOST_OVERHEAD if placement.gpus > 0 else 0
        host_overhead = HOST_BASE_OVERHEAD + vocab_overhead + runtime
        host = DeviceUsage("host", int(weights[0]), int(kv[0]), int(compute[0]), host_overhead)
        devices = []
        for index in range(n_dev):
            is_rpc = index < placement.rpc
            name = f"rpc{index}" if is_rpc else f"gpu{index - placement.rpc}"
            rpc_overhead = RPC_OVERHEAD if placement.rpc_on_cpu else GPU_OVERHEAD
            overhead = (rpc_overhead if is_rpc else GPU_OVERHEAD) if holds[index + 1] else 0
            devices.append(
                DeviceUsage(name, int(weights[index + 1]), int(kv[index + 1]), int(compute[index + 1]), overhead)
            )
        offloaded = int(np.count_nonzero(layer_dev != HOST))
        if placement.unified_memory:
            # Apple Silicon: one pool. The host total includes what the GPU allocates.
            host = DeviceUsage(
                "host",
                host.weights + sum(d.weights for d in devices),
                host.kv_cache + sum(d.kv_cache for d in devices),
                host.compute + sum(d.compute for d in devices),
                host.overhead,
            )
        return Estimate(
            architecture=info.architecture,
            kind=info.kind.value,
            context_size=self.n_ctx,
            layers=info.offloadable_layers,
            offloaded_layers=offloaded,
            host=host,
            devices=devices,
            warnings=[*self.warnings, *placement.notes],
        )

    def _repacked(self, ggml_type: int, rows: int = 8) -> bool:
        multiple = REPACK_ROWS.get(self.config.cpu_arch, {}).get(ggml_type) if self.config.cpu_repack else None
        return multiple is not None and rows % multiple == 0

    def _host_weights(self, layer_dev: np.ndarray, repack_active: bool) -> int:
        """Host weight bytes as llama.cpp holds them.

        With mmap, the CPU's tensors are a view of the file: llama.cpp maps, per file, the span from
        the first to the last of them (tensors of other devices lying in between included, as its
        "CPU_Mapped model buffer" reports). Re-packed tensors (only where ``cpu_weights_repacked``)
        are copied into a buffer of their own; without mmap the rest is read into a CPU buffer (a
        GPU's pinned host buffer, e.g. "CUDA_Host model buffer", of the same size).
        """
        table = self.info.tensors
        device_of_group = np.concatenate(([HOST], layer_dev))
        on_host = device_of_group[table.group + 1] == HOST
        repack = self._repack_mask & on_host if repack_active else np.zeros_like(on_host)
        mapped = on_host & ~repack
        repacked_bytes = int((table.end - table.start)[repack].sum())
        if not self.config.mmap:
            return int((table.end - table.start)[mapped].sum()) + repacked_bytes
        total = repacked_bytes
        if not mapped.any():
            return total
        shards = (0,) if self._single_file else np.unique(table.shard[mapped])
        for shard in shards:
            in_shard = mapped if self._single_file else mapped & (table.shard == shard)
            total += int(table.end[in_shard].max() - table.start[in_shard].min())
        return total
