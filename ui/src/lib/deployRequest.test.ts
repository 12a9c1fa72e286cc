import { describe, expect, it } from "vitest";

import { EMPTY_FORM, deployRequest, splitLabel } from "./deployRequest";

describe("deployRequest", () => {
  it("sends only the chosen source's fields and the defaults the form shows", () => {
    const body = deployRequest({
      ...EMPTY_FORM,
      name: " tiny ",
      source: "local_path",
      localPath: "/models/tiny.gguf",
      huggingfaceRepo: "left/over", // typed before switching source: not sent
    });
    expect(body).toEqual({
      name: "tiny",
      source: "local_path",
      local_path: "/models/tiny.gguf",
      replicas: 1,
      placement_strategy: "spread",
      cpu_offloading: false,
      distributed_inference_across_workers: true,
    });
  });

  it("carries every option of POST /api/models", () => {
    const body = deployRequest({
      ...EMPTY_FORM,
      name: "qwen",
      source: "huggingface",
      huggingfaceRepo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
      huggingfaceFile: "*q4_k_m.gguf",
      backend: "llama.cpp",
      replicas: 2,
      placementStrategy: "binpack",
      cpuOffloading: true,
      distributed: false,
      workerSelector: ["gpu=a100", "zone=eu=west"],
      gpuSelector: ["node1:cuda:0", "node1:cuda:1"],
      ctxSize: 8192,
      backendParameters: "--flash-attn on\n\n  -np 2  \n",
      description: "chat",
    });
    expect(body).toEqual({
      name: "qwen",
      source: "huggingface",
      huggingface_repo_id: "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
      huggingface_filename: "*q4_k_m.gguf",
      backend: "llama.cpp",
      replicas: 2,
      placement_strategy: "binpack",
      cpu_offloading: true,
      distributed_inference_across_workers: false,
      worker_selector: { gpu: "a100", zone: "eu=west" },
      gpu_selector: { device_ids: ["node1:cuda:0", "node1:cuda:1"] },
      ctx_size: 8192,
      backend_parameters: ["--flash-attn on", "-np 2"],
      description: "chat",
    });
  });

  it("splits a label at its first '='", () => {
    expect(splitLabel("a=b=c")).toEqual(["a", "b=c"]);
    expect(splitLabel("bare")).toEqual(["bare", ""]);
  });
});
