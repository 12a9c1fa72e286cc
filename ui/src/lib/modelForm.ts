// A deployment back into the deploy form's values (to edit it), and the form's values into the
// PATCH body that carries only what changed. A field cleared in the form is cleared on the server:
// null for what is nullable, an empty list or map for the rest.

import type { Model, ModelSpec } from "../api/types";
import { deployRequest, EMPTY_FORM, type DeployForm } from "./deployRequest";
import { SCALING_KEYS, scalingPatch, scalingToForm } from "./scaling";

/** The partial change PATCH /api/models/{id} takes; null clears a nullable field. */
export type ModelPatch = { [K in keyof ModelSpec]?: ModelSpec[K] | null };

const SOURCE_KEYS = [
  "huggingface_repo_id",
  "huggingface_filename",
  "modelscope_model_id",
  "modelscope_file_path",
  "ollama_library_model_name",
  "local_path",
] as const;

export function modelToForm(model: Model): DeployForm {
  return {
    ...EMPTY_FORM,
    ...scalingToForm(model),
    name: model.name,
    source: model.source,
    huggingfaceRepo: model.huggingface_repo_id ?? "",
    huggingfaceFile: model.huggingface_filename ?? "",
    modelscopeModel: model.modelscope_model_id ?? "",
    modelscopeFile: model.modelscope_file_path ?? "",
    ollamaName: model.ollama_library_model_name ?? "",
    localPath: model.local_path ?? "",
    backend: model.backend ?? "",
    placementStrategy: model.placement_strategy,
    cpuOffloading: model.cpu_offloading,
    distributed: model.distributed_inference_across_workers,
    workerSelector: Object.entries(model.worker_selector ?? {}).map(([key, value]) => `${key}=${value}`),
    gpuSelector: model.gpu_selector?.device_ids ?? [],
    ctxSize: model.ctx_size ?? "",
    backendParameters: (model.backend_parameters ?? []).join("\n"),
    description: model.description ?? "",
  };
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

const sortedMap = (map: Record<string, string> | undefined): [string, string][] =>
  Object.entries(map ?? {}).sort(([a], [b]) => a.localeCompare(b));

/** The fields of the form that differ from the model, as PATCH /api/models/{id} takes them. */
export function modelPatch(model: Model, form: DeployForm): ModelPatch {
  const wanted = deployRequest(form);
  const patch: ModelPatch = {};
  if (wanted.name !== model.name) patch.name = wanted.name;
  if (wanted.source !== model.source) patch.source = wanted.source;
  for (const key of SOURCE_KEYS) {
    const value = wanted[key] ?? null;
    if (patch.source) {
      // switching source drops the old source's fields on the server: send the new ones in full
      if (value !== null) patch[key] = value;
    } else if (value !== (model[key] ?? null)) {
      patch[key] = value;
    }
  }
  if ((wanted.backend ?? null) !== (model.backend ?? null)) patch.backend = wanted.backend ?? null;
  const parameters = wanted.backend_parameters ?? [];
  if (!same(parameters, model.backend_parameters ?? [])) patch.backend_parameters = parameters;
  Object.assign(patch, scalingPatch(model, form));
  if (wanted.placement_strategy !== model.placement_strategy) patch.placement_strategy = wanted.placement_strategy;
  if (wanted.cpu_offloading !== model.cpu_offloading) patch.cpu_offloading = wanted.cpu_offloading;
  if (wanted.distributed_inference_across_workers !== model.distributed_inference_across_workers) {
    patch.distributed_inference_across_workers = wanted.distributed_inference_across_workers;
  }
  const selector = wanted.worker_selector ?? {};
  if (!same(sortedMap(selector), sortedMap(model.worker_selector))) patch.worker_selector = selector;
  const gpus = wanted.gpu_selector ?? null;
  if (!same(gpus?.device_ids ?? [], model.gpu_selector?.device_ids ?? [])) patch.gpu_selector = gpus;
  if ((wanted.ctx_size ?? null) !== (model.ctx_size ?? null)) patch.ctx_size = wanted.ctx_size ?? null;
  if ((wanted.description ?? null) !== (model.description ?? null)) patch.description = wanted.description ?? null;
  return patch;
}

// As the server's services/spec_hash.py NOT_ROLLED: scaling and queueing act in the server, not the engine.
const NOT_ROLLED: ReadonlySet<string> = new Set<string>(["description", ...SCALING_KEYS]);

/** Whether a change replaces the instances (a roll): anything but scaling and the description. */
export function patchRolls(patch: ModelPatch): boolean {
  return Object.keys(patch).some((key) => !NOT_ROLLED.has(key));
}
