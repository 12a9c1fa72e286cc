// Per GPU a bar of what gpufleet has allocated beside what is used, against the total; a cluster
// without GPUs shows each worker's CPU device (its host RAM) instead.

import { Anchor, Badge, Card, Grid, Group, Loader, Stack, Text, Title } from "@mantine/core";
import { Link } from "react-router";

import type { DeviceDetail } from "../api/types";
import { DashMemoryBar, DashMemoryLegend } from "./DashMemoryBar";
import { isGpu, sortDevices } from "./DashDevices";

function DeviceRow({ device }: { device: DeviceDetail }) {
  return (
    <Grid align="center" gap="sm">
      <Grid.Col span={{ base: 12, sm: 4 }}>
        <Group gap={6} wrap="nowrap">
          <Anchor component={Link} to={`/workers/${device.worker_id}`} fw={600} size="sm">
            {device.worker_name}
          </Anchor>
          <Text size="sm" ff="monospace">
            {device.id}
          </Text>
          {device.simulated && (
            <Badge size="xs" variant="outline" color="gray">
              simulated
            </Badge>
          )}
        </Group>
        <Text size="xs" c="dimmed" truncate>
          {device.name}
        </Text>
      </Grid.Col>
      <Grid.Col span={{ base: 12, sm: 8 }}>
        <DashMemoryBar allocated={device.allocated} used={device.memory_used} total={device.memory_total} size="sm" />
      </Grid.Col>
    </Grid>
  );
}

export function DashGpuBars({ devices, workerCount }: { devices: DeviceDetail[]; workerCount: number }) {
  const gpus = devices.filter(isGpu);
  const shown = sortDevices(gpus.length ? gpus : devices);
  return (
    <Card withBorder my="md">
      <Group justify="space-between" mb="xs">
        <Title order={4}>{gpus.length ? "GPU memory" : "Memory"}</Title>
        <DashMemoryLegend />
      </Group>
      {devices.length === 0 && workerCount > 0 && <Loader size="sm" />}
      {devices.length === 0 && workerCount === 0 && (
        <Text size="sm" c="dimmed">
          No worker, no device: add a machine first.
        </Text>
      )}
      {devices.length > 0 && gpus.length === 0 && (
        <Text size="sm" c="dimmed" mb="xs">
          no GPUs: CPU memory shown
        </Text>
      )}
      <Stack gap="sm">
        {shown.map((device) => (
          <DeviceRow key={device.id} device={device} />
        ))}
      </Stack>
    </Card>
  );
}
