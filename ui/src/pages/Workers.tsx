// Workers: every machine of the cluster, live from the watch stream — state and why, address,
// labels, CPU/RAM, GPUs, version and engines, heartbeat age; labels, maintenance, delete; and the
// command that adds a machine.

import { Anchor, Center, Group, Loader, Paper, Stack, Table, Text, Title } from "@mantine/core";
import { Link } from "react-router";

import type { Worker } from "../api/types";
import { WorkerDeleteButton, WorkerMaintenanceSwitch } from "../components/WorkerActions";
import { engineList, useNow, WorkerLabelBadges, WorkerStateBadge } from "../components/WorkerCommon";
import { WorkerAddButton, WorkerJoinCommand } from "../components/WorkerJoin";
import { WorkerLabelsButton } from "../components/WorkerLabelsEditor";
import { formatAge, formatBytes } from "../lib/format";
import { useCluster } from "../state/cluster";

export function WorkersPage() {
  const { workers, synced } = useCluster();
  const now = useNow(3000);

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Workers</Title>
        <WorkerAddButton />
      </Group>
      {!synced ? (
        <Center p="xl">
          <Loader />
        </Center>
      ) : workers.length === 0 ? (
        <Paper withBorder p="lg">
          <Stack>
            <Text>No workers yet. Run this on a machine to add it:</Text>
            <WorkerJoinCommand />
          </Stack>
        </Paper>
      ) : (
        <Table.ScrollContainer minWidth={1100}>
          <Table striped highlightOnHover verticalSpacing="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Address</Table.Th>
                <Table.Th>Labels</Table.Th>
                <Table.Th>CPU / RAM</Table.Th>
                <Table.Th>GPUs</Table.Th>
                <Table.Th>Version / engines</Table.Th>
                <Table.Th>Heartbeat</Table.Th>
                <Table.Th>Actions</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {workers.map((worker) => (
                <WorkerRow key={worker.id} worker={worker} now={now} />
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}

function WorkerRow({ worker, now }: { worker: Worker; now: number }) {
  const engines = engineList(worker.engines);
  return (
    <Table.Tr>
      <Table.Td>
        <Anchor component={Link} to={`/workers/${worker.id}`} fw={500}>
          {worker.name}
        </Anchor>
      </Table.Td>
      <Table.Td miw={150}>
        <WorkerStateBadge state={worker.state} message={worker.state_message} />
      </Table.Td>
      <Table.Td>
        <Text size="sm" ff="monospace">
          {worker.ip}:{worker.port}
        </Text>
      </Table.Td>
      <Table.Td maw={260}>
        <WorkerLabelBadges labels={worker.labels} />
      </Table.Td>
      <Table.Td>
        <Text size="sm">{worker.cpu_cores} cores</Text>
        <Text size="sm" c="dimmed">
          RAM {formatBytes(worker.memory_used)} / {formatBytes(worker.memory_total)}
        </Text>
      </Table.Td>
      <Table.Td>
        {worker.gpu_count > 0 ? (
          <>
            <Text size="sm">{worker.gpu_count === 1 ? "1 GPU" : `${worker.gpu_count} GPUs`}</Text>
            <Text size="sm" c="dimmed">
              VRAM {formatBytes(worker.vram_used)} / {formatBytes(worker.vram_total)}
            </Text>
          </>
        ) : (
          <Text size="sm" c="dimmed">
            none
          </Text>
        )}
      </Table.Td>
      <Table.Td>
        <Text size="sm">{worker.gpufleet_version ? `gpufleet ${worker.gpufleet_version}` : "—"}</Text>
        {engines.length > 0 ? (
          engines.map((engine) => (
            <Text key={engine} size="xs" c="dimmed">
              {engine}
            </Text>
          ))
        ) : (
          <Text size="xs" c="dimmed">
            no engine yet
          </Text>
        )}
      </Table.Td>
      <Table.Td>
        <Text size="sm" title={worker.heartbeat_at ?? undefined}>
          {formatAge(worker.heartbeat_at, now)}
        </Text>
      </Table.Td>
      <Table.Td>
        <Stack gap={6} align="flex-start">
          <WorkerLabelsButton worker={worker} />
          <WorkerMaintenanceSwitch worker={worker} />
          <WorkerDeleteButton worker={worker} />
        </Stack>
      </Table.Td>
    </Table.Tr>
  );
}
