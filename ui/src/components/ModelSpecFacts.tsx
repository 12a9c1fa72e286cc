// A deployment's spec as facts: where the model comes from, how it runs, where it may go, how it
// scales and queues, and when it was last asked for.

import { Badge, Code, Group, Paper, SimpleGrid, Stack, Text } from "@mantine/core";
import type { ReactNode } from "react";

import type { Model } from "../api/types";
import { formatAge } from "../lib/format";
import { backendText, sourceText } from "../lib/modelText";
import { concurrencyText, idleTimeoutText, queueText, scalingText } from "../lib/scalingText";

export function ModelFact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Stack gap={2}>
      <Text size="xs" c="dimmed" tt="uppercase" fw={600}>
        {label}
      </Text>
      {typeof children === "string" ? (
        <Text size="sm" style={{ wordBreak: "break-word" }}>
          {children}
        </Text>
      ) : (
        children
      )}
    </Stack>
  );
}

function Pairs({ items, none }: { items: string[]; none: string }) {
  if (items.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        {none}
      </Text>
    );
  }
  return (
    <Group gap={4}>
      {items.map((item) => (
        <Badge key={item} variant="light" color="blue" tt="none">
          {item}
        </Badge>
      ))}
    </Group>
  );
}

export function ModelSpecFacts({ model }: { model: Model }) {
  const selector = Object.entries(model.worker_selector ?? {}).map(([key, value]) => `${key}=${value}`);
  const parameters = model.backend_parameters ?? [];
  return (
    <Paper withBorder p="md">
      <SimpleGrid cols={{ base: 1, sm: 2, md: 3 }} spacing="lg">
        <ModelFact label="Source">{sourceText(model)}</ModelFact>
        <ModelFact label="Backend">{backendText(model.backend)}</ModelFact>
        <ModelFact label="Backend parameters">
          {parameters.length ? (
            <Code block>{parameters.join("\n")}</Code>
          ) : (
            <Text size="sm" c="dimmed">
              none
            </Text>
          )}
        </ModelFact>
        <ModelFact label="Placement strategy">{model.placement_strategy}</ModelFact>
        <ModelFact label="CPU offloading">{model.cpu_offloading ? "on" : "off"}</ModelFact>
        <ModelFact label="Distributed inference">
          {model.distributed_inference_across_workers ? "on" : "off"}
        </ModelFact>
        <ModelFact label="Worker selector">
          <Pairs items={selector} none="any worker" />
        </ModelFact>
        <ModelFact label="GPU selector">
          <Pairs items={model.gpu_selector?.device_ids ?? []} none="any GPU" />
        </ModelFact>
        <ModelFact label="Scaling">{scalingText(model)}</ModelFact>
        <ModelFact label="Unload when idle">{idleTimeoutText(model.idle_timeout)}</ModelFact>
        <ModelFact label="Priority">{String(model.priority)}</ModelFact>
        <ModelFact label="Max concurrent requests">{concurrencyText(model.max_concurrent_requests)}</ModelFact>
        <ModelFact label="Queue">{queueText(model)}</ModelFact>
        <ModelFact label="Last request">
          <Text size="sm" title={model.last_request_at ?? undefined}>
            {formatAge(model.last_request_at)}
          </Text>
        </ModelFact>
        <ModelFact label="Context size">{model.ctx_size ? String(model.ctx_size) : "engine default"}</ModelFact>
        <ModelFact label="Description">{model.description || "—"}</ModelFact>
        <ModelFact label="Created">{formatAge(model.created_at)}</ModelFact>
        <ModelFact label="Updated">{formatAge(model.updated_at)}</ModelFact>
      </SimpleGrid>
    </Paper>
  );
}
