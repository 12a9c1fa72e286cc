// The fields of a deployment (every option of POST /api/models), as plain controlled state: the deploy
// dialog and the edit dialog both use them. The selectors offer what exists in the cluster now: the
// label pairs on the workers and the GPUs' ids. Replicas live in the "Scaling" section.

import { MultiSelect, NumberInput, Select, SimpleGrid, Stack, Switch, Textarea, TextInput } from "@mantine/core";
import { useMemo } from "react";

import type { ModelSource } from "../api/types";
import { SOURCES, type DeployForm } from "../lib/deployRequest";
import { deviceOptionLabel, workerLabelOptions } from "../lib/modelText";
import { useCluster } from "../state/cluster";
import { ModelScalingFields } from "./ModelScalingFields";

const BACKENDS = [
  { value: "auto", label: "Automatic" },
  { value: "llama.cpp", label: "llama.cpp" },
  { value: "vllm", label: "vLLM" },
];

const STRATEGIES = [
  { value: "spread", label: "spread" },
  { value: "binpack", label: "binpack" },
];

/** Options plus the values already chosen that no longer exist (so editing never drops them). */
function withChosen(options: { value: string; label: string }[], chosen: string[]) {
  const known = new Set(options.map((option) => option.value));
  return [...options, ...chosen.filter((value) => !known.has(value)).map((value) => ({ value, label: value }))];
}

function SourceFields({ form, set }: { form: DeployForm; set: (change: Partial<DeployForm>) => void }) {
  switch (form.source) {
    case "huggingface":
      return (
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <TextInput
            label="Repository"
            placeholder="Qwen/Qwen2.5-0.5B-Instruct-GGUF"
            value={form.huggingfaceRepo}
            onChange={(event) => set({ huggingfaceRepo: event.currentTarget.value })}
          />
          <TextInput
            label="File"
            description="A file name or glob"
            placeholder="*Q4_K_M.gguf"
            value={form.huggingfaceFile}
            onChange={(event) => set({ huggingfaceFile: event.currentTarget.value })}
          />
        </SimpleGrid>
      );
    case "modelscope":
      return (
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <TextInput
            label="Model ID"
            placeholder="qwen/Qwen2.5-0.5B-Instruct-GGUF"
            value={form.modelscopeModel}
            onChange={(event) => set({ modelscopeModel: event.currentTarget.value })}
          />
          <TextInput
            label="File path"
            placeholder="qwen2.5-0.5b-instruct-q4_k_m.gguf"
            value={form.modelscopeFile}
            onChange={(event) => set({ modelscopeFile: event.currentTarget.value })}
          />
        </SimpleGrid>
      );
    case "ollama_library":
      return (
        <TextInput
          label="Model name"
          placeholder="llama3.2:1b"
          value={form.ollamaName}
          onChange={(event) => set({ ollamaName: event.currentTarget.value })}
        />
      );
    case "local_path":
      return (
        <TextInput
          label="Local path"
          description="An absolute path on the worker"
          placeholder="/models/model.gguf"
          value={form.localPath}
          onChange={(event) => set({ localPath: event.currentTarget.value })}
        />
      );
    default:
      return null;
  }
}

export function ModelDeployForm({ form, onChange }: { form: DeployForm; onChange: (form: DeployForm) => void }) {
  const { workers, devices } = useCluster();
  const set = (change: Partial<DeployForm>) => onChange({ ...form, ...change });

  const labelOptions = useMemo(
    () => workerLabelOptions(workers).map((pair) => ({ value: pair, label: pair })),
    [workers],
  );
  const gpuOptions = useMemo(
    () =>
      devices
        .filter((device) => device.type !== "cpu")
        .map((device) => ({ value: device.id, label: deviceOptionLabel(device) })),
    [devices],
  );

  return (
    <Stack gap="sm">
      <SimpleGrid cols={{ base: 1, sm: 2 }}>
        <TextInput
          label="Name"
          description="The model name clients ask for"
          value={form.name}
          onChange={(event) => set({ name: event.currentTarget.value })}
        />
        <Select
          label="Source"
          data={SOURCES}
          allowDeselect={false}
          value={form.source}
          onChange={(value) => value && set({ source: value as ModelSource })}
        />
      </SimpleGrid>
      <SourceFields form={form} set={set} />
      <SimpleGrid cols={{ base: 1, sm: 2 }}>
        <Select
          label="Backend"
          data={BACKENDS}
          allowDeselect={false}
          value={form.backend || "auto"}
          onChange={(value) => set({ backend: value === "llama.cpp" || value === "vllm" ? value : "" })}
        />
        <Select
          label="Placement strategy"
          description="spread: fewest replicas per worker; binpack: fill workers first"
          data={STRATEGIES}
          allowDeselect={false}
          value={form.placementStrategy}
          onChange={(value) => set({ placementStrategy: value === "binpack" ? "binpack" : "spread" })}
        />
      </SimpleGrid>
      <ModelScalingFields form={form} set={set} />
      <Switch
        label="CPU offloading"
        description="Layers that do not fit on GPUs run on the CPU (or the whole model, without GPUs)"
        checked={form.cpuOffloading}
        onChange={(event) => set({ cpuOffloading: event.currentTarget.checked })}
      />
      <Switch
        label="Distributed inference across workers"
        description="Borrow GPUs of other workers over RPC when one worker is too small"
        checked={form.distributed}
        onChange={(event) => set({ distributed: event.currentTarget.checked })}
      />
      <SimpleGrid cols={{ base: 1, sm: 2 }}>
        <MultiSelect
          label="Worker selector"
          description="Only workers with all these labels"
          placeholder={labelOptions.length ? "Any worker" : "No worker labels yet"}
          data={withChosen(labelOptions, form.workerSelector)}
          value={form.workerSelector}
          onChange={(value) => set({ workerSelector: value })}
          searchable
          clearable
        />
        <MultiSelect
          label="GPU selector"
          description="Only these GPUs"
          placeholder={gpuOptions.length ? "Any GPU" : "No GPUs in the cluster"}
          data={withChosen(gpuOptions, form.gpuSelector)}
          value={form.gpuSelector}
          onChange={(value) => set({ gpuSelector: value })}
          searchable
          clearable
        />
      </SimpleGrid>
      <NumberInput
        label="Context size"
        description="Tokens; empty: the engine's default"
        min={1}
        allowDecimal={false}
        value={form.ctxSize}
        onChange={(value) => set({ ctxSize: typeof value === "number" ? value : "" })}
      />
      <Textarea
        label="Backend parameters"
        description="One per line, e.g. --flash-attn on"
        autosize
        minRows={2}
        value={form.backendParameters}
        onChange={(event) => set({ backendParameters: event.currentTarget.value })}
        styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
      />
      <Textarea
        label="Description"
        autosize
        minRows={1}
        value={form.description}
        onChange={(event) => set({ description: event.currentTarget.value })}
      />
    </Stack>
  );
}
