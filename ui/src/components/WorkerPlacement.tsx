// A worker's devices (allocated by gpufleet's claims beside live use and the total, from the
// server) and the instances placed on it, including those it lends devices to over RPC.

import { Anchor, Badge, Progress, Stack, Table, Text } from "@mantine/core";
import { Link } from "react-router";

import type { DeviceDetail, Instance } from "../api/types";
import { formatBytes, formatPercent } from "../lib/format";

export function WorkerDevices({ devices }: { devices: DeviceDetail[] }) {
  if (devices.length === 0) return <Text c="dimmed">This worker reports no device.</Text>;
  return (
    <Table.ScrollContainer minWidth={900}>
      <Table striped>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Device</Table.Th>
            <Table.Th>Name</Table.Th>
            <Table.Th>Memory allocated / used / total</Table.Th>
            <Table.Th>Utilization</Table.Th>
            <Table.Th>Temperature</Table.Th>
            <Table.Th>Held by</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {devices.map((device) => (
            <Table.Tr key={device.id}>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {device.id}
                </Text>
                {device.simulated && (
                  <Badge size="xs" variant="outline" color="gray">
                    simulated
                  </Badge>
                )}
              </Table.Td>
              <Table.Td>
                <Text size="sm">{device.name}</Text>
                <Text size="xs" c="dimmed">
                  {device.type === "cpu" ? `host RAM${device.cores ? `, ${device.cores} cores` : ""}` : device.vendor}
                </Text>
              </Table.Td>
              <Table.Td miw={260}>
                <Text size="sm">
                  {formatBytes(device.allocated)} allocated / {formatBytes(device.memory_used)} used /{" "}
                  {formatBytes(device.memory_total)}
                </Text>
                <Progress.Root size="sm" mt={4}>
                  <Progress.Section
                    value={device.memory_total ? (100 * device.allocated) / device.memory_total : 0}
                    color="blue"
                    title={`allocated ${formatPercent(device.allocated, device.memory_total)}`}
                  />
                </Progress.Root>
                <Progress
                  size="xs"
                  mt={2}
                  color="orange"
                  value={device.memory_total ? (100 * device.memory_used) / device.memory_total : 0}
                  title={`used ${formatPercent(device.memory_used, device.memory_total)}`}
                />
              </Table.Td>
              <Table.Td>{device.utilization === null ? "—" : `${Math.round(device.utilization)}%`}</Table.Td>
              <Table.Td>{device.temperature === null ? "—" : `${Math.round(device.temperature)} °C`}</Table.Td>
              <Table.Td>
                {device.holders.length === 0 ? (
                  <Text size="sm" c="dimmed">
                    nothing
                  </Text>
                ) : (
                  <Stack gap={0}>
                    {device.holders.map((holder) => (
                      <Text key={holder.instance_id} size="sm">
                        <Anchor component={Link} to={`/instances/${holder.instance_id}`}>
                          {holder.instance_name}
                        </Anchor>{" "}
                        {formatBytes(holder.bytes)}
                      </Text>
                    ))}
                  </Stack>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function WorkerInstances({ workerId, instances }: { workerId: number; instances: Instance[] }) {
  const placed = instances.filter(
    (instance) =>
      instance.worker_id === workerId || instance.subordinates.some((sub) => sub.worker_id === workerId),
  );
  if (placed.length === 0) return <Text c="dimmed">No instance is placed on this worker.</Text>;
  return (
    <Table striped>
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Instance</Table.Th>
          <Table.Th>Model</Table.Th>
          <Table.Th>State</Table.Th>
          <Table.Th>Devices here</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {placed.map((instance) => {
          const lends = instance.worker_id !== workerId;
          const devices = lends
            ? instance.subordinates.filter((sub) => sub.worker_id === workerId).flatMap((sub) => sub.device_ids)
            : instance.device_ids;
          return (
            <Table.Tr key={instance.id}>
              <Table.Td>
                <Anchor component={Link} to={`/instances/${instance.id}`}>
                  {instance.name}
                </Anchor>
                {lends && (
                  <Badge ml="xs" size="sm" variant="light" color="grape" tt="none">
                    lends devices over RPC
                  </Badge>
                )}
                {lends && instance.worker_name && (
                  <Text size="xs" c="dimmed">
                    runs on {instance.worker_name}
                  </Text>
                )}
              </Table.Td>
              <Table.Td>{instance.model_name}</Table.Td>
              <Table.Td>
                <Text size="sm">{instance.state}</Text>
                {instance.state_message && (
                  <Text size="xs" c="dimmed">
                    {instance.state_message}
                  </Text>
                )}
              </Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {devices.length ? devices.join(", ") : "—"}
                </Text>
              </Table.Td>
            </Table.Tr>
          );
        })}
      </Table.Tbody>
    </Table>
  );
}
