// How a deployment and its placements read on the model pages: the source in words, the backend,
// layers on GPU, the bytes a claim holds per device, the choices of the selectors.

import type { Claim, Device, Instance, InstanceState, ModelSpec, Worker } from "../api/types";
import { formatBytes } from "./format";

type SourceFields = Pick<
  ModelSpec,
  | "source"
  | "huggingface_repo_id"
  | "huggingface_filename"
  | "modelscope_model_id"
  | "modelscope_file_path"
  | "ollama_library_model_name"
  | "local_path"
>;

const withFile = (id: string | null | undefined, file: string | null | undefined): string =>
  file ? `${id ?? ""}:${file}` : (id ?? "");

/** "Hugging Face Qwen/Qwen2.5-0.5B-Instruct-GGUF:*q4_k_m.gguf", "Local path /models/x.gguf"… */
export function sourceText(spec: SourceFields): string {
  switch (spec.source) {
    case "huggingface":
      return `Hugging Face ${withFile(spec.huggingface_repo_id, spec.huggingface_filename)}`;
    case "modelscope":
      return `ModelScope ${withFile(spec.modelscope_model_id, spec.modelscope_file_path)}`;
    case "ollama_library":
      return `Ollama library ${spec.ollama_library_model_name ?? ""}`;
    case "local_path":
      return `Local path ${spec.local_path ?? ""}`;
    default:
      return String(spec.source);
  }
}

/** The backend chosen, or "auto" when gpufleet picks it. */
export function backendText(backend: string | null | undefined): string {
  return backend || "auto";
}

/** "28/29" layers on GPU, or null when the claim does not say. */
export function layersText(claim: Claim | null | undefined): string | null {
  if (!claim || claim.offload_layers === undefined || claim.offload_layers === null) return null;
  return `${claim.offload_layers}/${claim.total_layers ?? "?"}`;
}

/** "0.5, 0.5" or null. */
export function tensorSplitText(claim: Claim | null | undefined): string | null {
  const split = claim?.tensor_split;
  if (!split || split.length === 0) return null;
  return split.map((part) => String(Math.round(part * 1000) / 1000)).join(", ");
}

/** Each device's bytes then the RAM: ["node1:cuda:0: 12 GiB", "RAM: 1.5 GiB"]. */
export function claimParts(claim: Claim | null | undefined): string[] {
  if (!claim) return [];
  const parts = Object.entries(claim.vram ?? {}).map(([device, bytes]) => `${device}: ${formatBytes(bytes)}`);
  if (claim.ram) parts.push(`RAM: ${formatBytes(claim.ram)}`);
  return parts;
}

/** The label pairs that exist on workers, sorted, each once: ["gpu=a100", "zone=eu"]. */
export function workerLabelOptions(workers: Pick<Worker, "labels">[]): string[] {
  const pairs = new Set<string>();
  for (const worker of workers) {
    for (const [key, value] of Object.entries(worker.labels ?? {})) pairs.add(`${key}=${value}`);
  }
  return [...pairs].sort();
}

/** "node1:cuda:0 — NVIDIA H100 (80 GiB)". */
export function deviceOptionLabel(device: Pick<Device, "id" | "name" | "memory_total">): string {
  return `${device.id} — ${device.name} (${formatBytes(device.memory_total)})`;
}

const STATE_ORDER: InstanceState[] = [
  "running",
  "starting",
  "downloading",
  "scheduled",
  "pending",
  "stopping",
  "unreachable",
  "error",
];

/** How many of the instances are in each state, in a fixed order: [["running", 2], ["error", 1]]. */
export function stateCounts(instances: Pick<Instance, "state">[]): [InstanceState, number][] {
  const counts = new Map<InstanceState, number>();
  for (const instance of instances) counts.set(instance.state, (counts.get(instance.state) ?? 0) + 1);
  const rank = (state: InstanceState) => {
    const at = STATE_ORDER.indexOf(state);
    return at < 0 ? STATE_ORDER.length : at;
  };
  return [...counts.entries()].sort(([a], [b]) => rank(a) - rank(b));
}

export interface ReplicaCounts {
  ready: number; // running, whatever their spec
  updated: number; // of the current spec, not stopping
  outdated: number; // of an earlier spec, not stopping: > 0 while a change rolls out
  loading: number; // pending, scheduled, downloading or starting
}

const LOADING = new Set(["pending", "scheduled", "downloading", "starting"]);

/**
 * A deployment's replica counts from its live instances, as the server counts them when it lists
 * models (the watch's model objects carry the counts of their last change only, so they go stale as
 * instances move; the instances themselves are live).
 */
export function replicaCounts(
  model: { id: number; spec_hash: string | null },
  instances: Pick<Instance, "model_id" | "state" | "spec_hash">[],
): ReplicaCounts {
  const counts: ReplicaCounts = { ready: 0, updated: 0, outdated: 0, loading: 0 };
  for (const instance of instances) {
    if (instance.model_id !== model.id) continue;
    if (instance.state === "running") counts.ready += 1;
    if (LOADING.has(instance.state)) counts.loading += 1;
    if (instance.state === "stopping") continue;
    if (instance.spec_hash === model.spec_hash) counts.updated += 1;
    else counts.outdated += 1;
  }
  return counts;
}
