// The deploy form's values → the body of POST /api/models (and /api/models/preview). Only what the
// person set is sent, so the server's defaults apply to the rest; every source sends only its own
// fields, as the API requires. The "Scaling" section's values and rules are lib/scaling.ts's.

import type { ModelSource, ModelSpec } from "../api/types";
import { previewReplicas, SCALING_DEFAULTS, scalingRequest, type ScalingForm } from "./scaling";

export interface DeployForm extends ScalingForm {
  name: string;
  source: ModelSource;
  huggingfaceRepo: string;
  huggingfaceFile: string;
  modelscopeModel: string;
  modelscopeFile: string;
  ollamaName: string;
  localPath: string;
  backend: "" | "llama.cpp" | "vllm";
  placementStrategy: "spread" | "binpack";
  cpuOffloading: boolean;
  distributed: boolean;
  workerSelector: string[]; // "key=value"
  gpuSelector: string[]; // device ids
  ctxSize: number | "";
  backendParameters: string; // one per line
  description: string;
}

export const EMPTY_FORM: DeployForm = {
  ...SCALING_DEFAULTS,
  name: "",
  source: "huggingface",
  huggingfaceRepo: "",
  huggingfaceFile: "",
  modelscopeModel: "",
  modelscopeFile: "",
  ollamaName: "",
  localPath: "",
  backend: "",
  placementStrategy: "spread",
  cpuOffloading: false,
  distributed: true,
  workerSelector: [],
  gpuSelector: [],
  ctxSize: "",
  backendParameters: "",
  description: "",
};

export const SOURCES: { value: ModelSource; label: string }[] = [
  { value: "huggingface", label: "Hugging Face" },
  { value: "modelscope", label: "ModelScope" },
  { value: "ollama_library", label: "Ollama library" },
  { value: "local_path", label: "Local path" },
];

const text = (value: string): string | undefined => (value.trim() ? value.trim() : undefined);

/** "gpu=a100" → ["gpu", "a100"]; the first "=" splits. */
export function splitLabel(label: string): [string, string] {
  const at = label.indexOf("=");
  return at < 0 ? [label.trim(), ""] : [label.slice(0, at).trim(), label.slice(at + 1).trim()];
}

export function deployRequest(form: DeployForm): ModelSpec {
  const body: ModelSpec = { name: form.name.trim(), source: form.source };
  const sourceFields: Record<ModelSource, Partial<ModelSpec>> = {
    huggingface: { huggingface_repo_id: text(form.huggingfaceRepo), huggingface_filename: text(form.huggingfaceFile) },
    modelscope: { modelscope_model_id: text(form.modelscopeModel), modelscope_file_path: text(form.modelscopeFile) },
    ollama_library: { ollama_library_model_name: text(form.ollamaName) },
    local_path: { local_path: text(form.localPath) },
  };
  for (const [key, value] of Object.entries(sourceFields[form.source])) {
    if (value !== undefined) (body as unknown as Record<string, unknown>)[key] = value;
  }
  if (form.backend) body.backend = form.backend;
  Object.assign(body, scalingRequest(form));
  body.placement_strategy = form.placementStrategy;
  body.cpu_offloading = form.cpuOffloading;
  body.distributed_inference_across_workers = form.distributed;
  if (form.workerSelector.length) body.worker_selector = Object.fromEntries(form.workerSelector.map(splitLabel));
  if (form.gpuSelector.length) body.gpu_selector = { device_ids: form.gpuSelector };
  if (form.ctxSize !== "") body.ctx_size = form.ctxSize;
  const parameters = form.backendParameters
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  if (parameters.length) body.backend_parameters = parameters;
  if (form.description.trim()) body.description = form.description.trim();
  return body;
}

/** The body of POST /api/models/preview: as deployed, with the replicas a first load would place. */
export function previewRequest(form: DeployForm): ModelSpec {
  return { ...deployRequest(form), replicas: previewReplicas(form) };
}
