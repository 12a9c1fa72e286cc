// The dashboard's counts: workers by state, GPUs, models, instances by state; each links to its page.

import { Anchor, Badge, Card, Group, SimpleGrid, Text } from "@mantine/core";
import type { ReactNode } from "react";
import { Link } from "react-router";

import type { DeviceDetail, Instance, InstanceState, Model, Worker, WorkerState } from "../api/types";
import { formatBytes, formatCount } from "../lib/format";

const WORKER_STATES: { state: WorkerState; color: string }[] = [
  { state: "ready", color: "green" },
  { state: "not_ready", color: "yellow" },
  { state: "unreachable", color: "red" },
  { state: "maintenance", color: "gray" },
];

export const INSTANCE_COLORS: Record<InstanceState, string> = {
  pending: "gray",
  scheduled: "blue",
  downloading: "cyan",
  starting: "indigo",
  running: "green",
  error: "red",
  unreachable: "orange",
  stopping: "gray",
};

function countBy<T, K extends string>(items: T[], key: (item: T) => K): Map<K, number> {
  const counts = new Map<K, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

const plural = (n: number, one: string, many: string) => `${formatCount(n)} ${n === 1 ? one : many}`;

function CountCard({
  title,
  count,
  to,
  name,
  children,
}: {
  title: string;
  count: number;
  to: string;
  name: string;
  children?: ReactNode;
}) {
  return (
    <Card withBorder padding="md">
      <Text size="sm" c="dimmed" fw={500}>
        {title}
      </Text>
      <Anchor component={Link} to={to} fz={32} fw={700} aria-label={name} underline="hover">
        {formatCount(count)}
      </Anchor>
      <Group gap={6} mt={4}>
        {children}
      </Group>
    </Card>
  );
}

export function DashCounts({
  workers,
  devices,
  models,
  instances,
}: {
  workers: Worker[];
  devices: DeviceDetail[];
  models: Model[];
  instances: Instance[];
}) {
  const workerStates = countBy(workers, (w) => w.state);
  const instanceStates = countBy(instances, (i) => i.state);
  // Before GET /api/devices answers, the workers' own device lists give the same count.
  const gpus = devices.length
    ? devices.filter((d) => d.type !== "cpu")
    : workers.flatMap((w) => w.devices.filter((d) => d.type !== "cpu"));
  const vram = gpus.reduce((sum, d) => sum + d.memory_total, 0);
  // Counted from the instances, which change on every state event; a model's ready_replicas is only
  // as fresh as its last model event, and an instance becoming running publishes none.
  const modelIds = new Set(models.map((m) => m.id));
  const running = instances.filter((i) => i.state === "running" && i.model_id !== null && modelIds.has(i.model_id)).length;
  const desired = models.reduce((sum, m) => sum + m.replicas, 0);
  return (
    <SimpleGrid cols={{ base: 1, sm: 2, lg: 4 }}>
      <CountCard title="Workers" count={workers.length} to="/workers" name={plural(workers.length, "worker", "workers")}>
        {WORKER_STATES.map(({ state, color }) => (
          <Badge key={state} color={color} variant={workerStates.get(state) ? "light" : "outline"}>
            {workerStates.get(state) ?? 0} {state.replace("_", " ")}
          </Badge>
        ))}
      </CountCard>
      <CountCard title="GPUs" count={gpus.length} to="/gpus" name={plural(gpus.length, "GPU", "GPUs")}>
        <Text size="sm" c="dimmed">
          {gpus.length ? `${formatBytes(vram)} of GPU memory` : workers.length ? "none: models run on CPUs" : "none"}
        </Text>
      </CountCard>
      <CountCard title="Models" count={models.length} to="/models" name={plural(models.length, "model", "models")}>
        <Text size="sm" c="dimmed">
          {running}/{desired} replicas running
        </Text>
      </CountCard>
      <CountCard
        title="Instances"
        count={instances.length}
        to="/models"
        name={plural(instances.length, "instance", "instances")}
      >
        {instances.length === 0 && (
          <Text size="sm" c="dimmed">
            none yet
          </Text>
        )}
        {(Object.keys(INSTANCE_COLORS) as InstanceState[])
          .filter((state) => instanceStates.get(state))
          .map((state) => (
            <Badge key={state} color={INSTANCE_COLORS[state]} variant="light">
              {instanceStates.get(state)} {state}
            </Badge>
          ))}
      </CountCard>
    </SimpleGrid>
  );
}
