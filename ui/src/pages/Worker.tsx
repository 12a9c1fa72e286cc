// One worker: its facts, its devices (allocation from the server beside live use) and the
// instances placed on it, live from the watch stream.

import { Anchor, Center, Group, Loader, Paper, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import type { ReactNode } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { WorkerDeleteButton, WorkerMaintenanceSwitch } from "../components/WorkerActions";
import { engineList, useNow, WorkerLabelBadges, WorkerStateBadge } from "../components/WorkerCommon";
import { WorkerLabelsButton } from "../components/WorkerLabelsEditor";
import { WorkerDevices, WorkerInstances } from "../components/WorkerPlacement";
import { formatAge, formatBytes } from "../lib/format";
import { useCluster } from "../state/cluster";

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Stack gap={2}>
      <Text size="xs" c="dimmed" tt="uppercase" fw={600}>
        {label}
      </Text>
      {typeof children === "string" ? <Text size="sm">{children}</Text> : children}
    </Stack>
  );
}

export function WorkerPage() {
  const { id } = useParams();
  const navigate = useNavigate();
  const { workers, devices, instances, synced } = useCluster();
  const now = useNow(3000);
  const worker = workers.find((candidate) => String(candidate.id) === id);

  if (!worker) {
    if (!synced) {
      return (
        <Center p="xl">
          <Loader />
        </Center>
      );
    }
    return (
      <Stack>
        <Title order={2}>Worker</Title>
        <Text>This worker no longer exists.</Text>
        <Anchor component={Link} to="/workers">
          Back to the workers
        </Anchor>
      </Stack>
    );
  }

  const engines = engineList(worker.engines);
  const own = devices.filter((device) => device.worker_id === worker.id);

  return (
    <Stack>
      <Group justify="space-between">
        <Group>
          <Anchor component={Link} to="/workers" size="sm">
            Workers
          </Anchor>
          <Text c="dimmed">/</Text>
          <Title order={2}>{worker.name}</Title>
        </Group>
        <Group>
          <WorkerLabelsButton worker={worker} />
          <WorkerMaintenanceSwitch worker={worker} />
          <WorkerDeleteButton worker={worker} onDeleted={() => navigate("/workers")} />
        </Group>
      </Group>
      <Paper withBorder p="md">
        <SimpleGrid cols={{ base: 2, md: 4 }} spacing="lg">
          <Fact label="State">
            <WorkerStateBadge state={worker.state} message={worker.state_message} />
          </Fact>
          <Fact label="Address">{`${worker.ip}:${worker.port}`}</Fact>
          <Fact label="OS / arch">{`${worker.os ?? "—"} / ${worker.arch ?? "—"}`}</Fact>
          <Fact label="Heartbeat">{formatAge(worker.heartbeat_at, now)}</Fact>
          <Fact label="gpufleet version">{worker.gpufleet_version ?? "—"}</Fact>
          <Fact label="Engines">{engines.length ? engines.join(", ") : "none yet"}</Fact>
          <Fact label="CPU / RAM">
            {`${worker.cpu_cores} cores, ${formatBytes(worker.memory_used)} / ${formatBytes(worker.memory_total)} used`}
          </Fact>
          <Fact label="System reserved">
            {`RAM ${formatBytes(worker.system_reserved.ram)}, VRAM ${formatBytes(worker.system_reserved.vram)} per GPU`}
          </Fact>
        </SimpleGrid>
        <Stack mt="md" gap={4}>
          <Fact label="Labels">
            <WorkerLabelBadges labels={worker.labels} />
          </Fact>
        </Stack>
      </Paper>
      <Title order={3}>Devices</Title>
      <WorkerDevices devices={own} />
      <Title order={3}>Instances</Title>
      <WorkerInstances workerId={worker.id} instances={instances} />
    </Stack>
  );
}
