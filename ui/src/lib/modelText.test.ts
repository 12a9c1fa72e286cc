import { describe, expect, it } from "vitest";

import type { ModelSpec } from "../api/types";
import {
  backendText,
  claimParts,
  deviceOptionLabel,
  layersText,
  replicaCounts,
  sourceText,
  stateCounts,
  tensorSplitText,
  workerLabelOptions,
} from "./modelText";

const GiB = 1024 ** 3;

describe("sourceText", () => {
  it.each<[Partial<ModelSpec>, string]>([
    [
      { source: "huggingface", huggingface_repo_id: "Qwen/Qwen2.5-0.5B-Instruct-GGUF", huggingface_filename: "*q4_k_m.gguf" },
      "Hugging Face Qwen/Qwen2.5-0.5B-Instruct-GGUF:*q4_k_m.gguf",
    ],
    [{ source: "huggingface", huggingface_repo_id: "org/repo", huggingface_filename: null }, "Hugging Face org/repo"],
    [{ source: "modelscope", modelscope_model_id: "qwen/Qwen2-7B", modelscope_file_path: "q4.gguf" }, "ModelScope qwen/Qwen2-7B:q4.gguf"],
    [{ source: "ollama_library", ollama_library_model_name: "llama3.2:1b" }, "Ollama library llama3.2:1b"],
    [{ source: "local_path", local_path: "/models/x.gguf" }, "Local path /models/x.gguf"],
  ])("%j → %s", (spec, expected) => {
    expect(sourceText(spec as ModelSpec)).toBe(expected);
  });

  it("writes auto for a backend left to gpufleet", () => {
    expect(backendText(null)).toBe("auto");
    expect(backendText("llama.cpp")).toBe("llama.cpp");
  });
});

describe("claims", () => {
  it.each([
    [{ ram: 0, vram: {}, offload_layers: 28, total_layers: 29 }, "28/29"],
    [{ ram: 0, vram: {}, offload_layers: 0, total_layers: 29 }, "0/29"],
    [{ ram: 0, vram: {} }, null],
    [null, null],
  ])("layers of %j → %s", (claim, expected) => {
    expect(layersText(claim)).toBe(expected);
  });

  it("lists bytes per device, then RAM", () => {
    expect(claimParts({ ram: 1.5 * GiB, vram: { "n1:cuda:0": 12 * GiB, "n1:cuda:1": 10 * GiB } })).toEqual([
      "n1:cuda:0: 12 GiB",
      "n1:cuda:1: 10 GiB",
      "RAM: 1.5 GiB",
    ]);
    expect(claimParts({ ram: 0, vram: {} })).toEqual([]);
    expect(claimParts(null)).toEqual([]);
  });

  it("writes a tensor split", () => {
    expect(tensorSplitText({ ram: 0, vram: {}, tensor_split: [0.5, 0.5] })).toBe("0.5, 0.5");
    expect(tensorSplitText({ ram: 0, vram: {}, tensor_split: [2 / 3, 1 / 3] })).toBe("0.667, 0.333");
    expect(tensorSplitText({ ram: 0, vram: {} })).toBeNull();
  });
});

describe("selector options and state counts", () => {
  it("offers each label pair on the workers once, sorted", () => {
    expect(workerLabelOptions([{ labels: { gpu: "a100", zone: "eu" } }, { labels: { gpu: "a100" } }, { labels: {} }])).toEqual([
      "gpu=a100",
      "zone=eu",
    ]);
  });

  it("names a device with its model and memory", () => {
    expect(deviceOptionLabel({ id: "node1:cuda:0", name: "NVIDIA H100", memory_total: 80 * GiB })).toBe(
      "node1:cuda:0 — NVIDIA H100 (80 GiB)",
    );
  });

  it("counts instances per state, running first", () => {
    expect(stateCounts([{ state: "error" }, { state: "running" }, { state: "running" }, { state: "pending" }])).toEqual([
      ["running", 2],
      ["pending", 1],
      ["error", 1],
    ]);
    expect(stateCounts([])).toEqual([]);
  });
});

describe("replicaCounts", () => {
  const model = { id: 1, spec_hash: "new" };
  it.each([
    [[], { ready: 0, updated: 0, outdated: 0, loading: 0 }],
    [[{ model_id: 1, state: "running", spec_hash: "new" }], { ready: 1, updated: 1, outdated: 0, loading: 0 }],
    [
      [
        { model_id: 1, state: "running", spec_hash: "old" },
        { model_id: 1, state: "starting", spec_hash: "new" },
        { model_id: 1, state: "stopping", spec_hash: "old" },
        { model_id: 2, state: "running", spec_hash: "new" },
        { model_id: 1, state: "pending", spec_hash: null },
      ],
      { ready: 1, updated: 1, outdated: 2, loading: 2 },
    ],
  ] as const)("%j → %j", (instances, expected) => {
    expect(replicaCounts(model, [...instances])).toEqual(expected);
  });
});
