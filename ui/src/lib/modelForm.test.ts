import { describe, expect, it } from "vitest";

import type { Model } from "../api/types";
import { deployRequest } from "./deployRequest";
import { modelPatch, modelToForm, patchRolls } from "./modelForm";

const MODEL: Model = {
  id: 4,
  name: "qwen",
  source: "huggingface",
  huggingface_repo_id: "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
  huggingface_filename: "*q4_k_m.gguf",
  modelscope_model_id: null,
  modelscope_file_path: null,
  ollama_library_model_name: null,
  local_path: null,
  backend: "llama.cpp",
  backend_parameters: ["--flash-attn on", "-np 2"],
  replicas: 2,
  placement_strategy: "binpack",
  cpu_offloading: true,
  distributed_inference_across_workers: false,
  worker_selector: { gpu: "a100", zone: "eu" },
  gpu_selector: { device_ids: ["n1:cuda:0"] },
  ctx_size: 8192,
  description: "chat",
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
  ready_replicas: 2,
  spec_hash: "abc",
  updated_replicas: 2,
  outdated_replicas: 0,
  min_replicas: null,
  max_replicas: null,
  idle_timeout: null,
  priority: 0,
  max_concurrent_requests: null,
  max_queue: 100,
  queue_timeout: 120,
  running_replicas: 2,
  loading_replicas: 0,
  queued_requests: 0,
  last_request_at: null,
};

// The same deployment on demand: 0–3 replicas, 1 loaded now, unloaded after 5 idle minutes.
const ON_DEMAND: Model = { ...MODEL, replicas: 1, min_replicas: 0, max_replicas: 3, idle_timeout: 300 };

describe("modelToForm", () => {
  it("fills the form so that it deploys the same spec", () => {
    const form = modelToForm(MODEL);
    expect(form.workerSelector).toEqual(["gpu=a100", "zone=eu"]);
    expect(form.backendParameters).toBe("--flash-attn on\n-np 2");
    expect(deployRequest(form)).toEqual({
      name: "qwen",
      source: "huggingface",
      huggingface_repo_id: "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
      huggingface_filename: "*q4_k_m.gguf",
      backend: "llama.cpp",
      backend_parameters: ["--flash-attn on", "-np 2"],
      replicas: 2,
      placement_strategy: "binpack",
      cpu_offloading: true,
      distributed_inference_across_workers: false,
      worker_selector: { gpu: "a100", zone: "eu" },
      gpu_selector: { device_ids: ["n1:cuda:0"] },
      ctx_size: 8192,
      description: "chat",
    });
  });

  it("leaves unset fields empty", () => {
    const form = modelToForm({ ...MODEL, backend: null, ctx_size: null, description: null, gpu_selector: null });
    expect([form.backend, form.ctxSize, form.description, form.gpuSelector]).toEqual(["", "", "", []]);
  });
});

describe("modelPatch", () => {
  const form = modelToForm(MODEL);

  it.each([
    ["nothing changed", {}, {}],
    ["replicas", { replicas: 3 }, { replicas: 3 }],
    ["description cleared", { description: " " }, { description: null }],
    ["ctx size cleared", { ctxSize: "" as const }, { ctx_size: null }],
    ["backend to automatic", { backend: "" as const }, { backend: null }],
    ["gpu selector cleared", { gpuSelector: [] }, { gpu_selector: null }],
    ["worker selector cleared", { workerSelector: [] }, { worker_selector: {} }],
    ["worker selector reordered", { workerSelector: ["zone=eu", "gpu=a100"] }, {}],
    ["parameters cleared", { backendParameters: "" }, { backend_parameters: [] }],
    ["file cleared", { huggingfaceFile: "" }, { huggingface_filename: null }],
    ["strategy and switches", { placementStrategy: "spread" as const, cpuOffloading: false, distributed: true }, {
      placement_strategy: "spread",
      cpu_offloading: false,
      distributed_inference_across_workers: true,
    }],
    ["source switched", { source: "local_path" as const, localPath: "/m/q.gguf" }, { source: "local_path", local_path: "/m/q.gguf" }],
    // fixed → on demand: the bounds and the idle timeout, no replicas (the server moves it into 0–3)
    ["to on demand", { scaling: "autoscale" as const, minReplicas: 0, maxReplicas: 3, idleTimeout: 300 }, {
      min_replicas: 0,
      max_replicas: 3,
      idle_timeout: 300,
    }],
    ["queueing", { priority: 5, maxConcurrentRequests: 4, maxQueue: 0, queueTimeout: 30 }, {
      priority: 5,
      max_concurrent_requests: 4,
      max_queue: 0,
      queue_timeout: 30,
    }],
  ])("%s", (_, change, expected) => {
    expect(modelPatch(MODEL, { ...form, ...change })).toEqual(expected);
  });

  describe("of an on-demand model", () => {
    const onDemand = modelToForm(ON_DEMAND);

    it.each([
      ["nothing changed", {}, {}],
      // back to fixed at the current target (1): the bounds and the idle timeout cleared
      ["to fixed", { scaling: "fixed" as const }, { min_replicas: null, max_replicas: null, idle_timeout: null }],
      ["to fixed at 2", { scaling: "fixed" as const, replicas: 2 }, {
        replicas: 2,
        min_replicas: null,
        max_replicas: null,
        idle_timeout: null,
      }],
      ["max raised: both bounds sent", { maxReplicas: 5 }, { min_replicas: 0, max_replicas: 5 }],
      ["idle timeout cleared: never unload", { idleTimeout: "" as const }, { idle_timeout: null }],
      ["replicas typed while hidden: not sent", { replicas: 7 }, {}],
    ])("%s", (_, change, expected) => {
      expect(modelPatch(ON_DEMAND, { ...onDemand, ...change })).toEqual(expected);
    });

    it("fills the scaling section from the model", () => {
      expect([onDemand.scaling, onDemand.minReplicas, onDemand.maxReplicas, onDemand.idleTimeout]).toEqual([
        "autoscale",
        0,
        3,
        300,
      ]);
    });
  });

  it("tells a roll from a change in place", () => {
    expect(patchRolls({ replicas: 3, description: null })).toBe(false);
    expect(patchRolls({ min_replicas: null, max_replicas: null, idle_timeout: null, priority: 3 })).toBe(false);
    expect(patchRolls({ replicas: 3, ctx_size: 4096 })).toBe(true);
    expect(patchRolls({})).toBe(false);
  });
});
