// Every device of the cluster, each worker's CPU (its host RAM) included: memory allocated by
// gpufleet's instances, used live and total, utilization, temperature, and who holds it.

import { Anchor, Badge, Group, Stack, Table, Text } from "@mantine/core";
import { Link } from "react-router";

import type { DeviceDetail, DeviceHolder, InstanceState } from "../api/types";
import { formatBytes } from "../lib/format";
import { INSTANCE_COLORS } from "./DashCounts";
import { DashMemoryBar } from "./DashMemoryBar";

const DASH = "—";

function Holder({ holder }: { holder: DeviceHolder }) {
  const color = INSTANCE_COLORS[holder.state as InstanceState] ?? "gray";
  return (
    <Text size="sm">
      <Anchor component={Link} to={`/instances/${holder.instance_id}`} size="sm">
        {holder.instance_name}
      </Anchor>{" "}
      <Text span size="sm" c={color}>
        ({holder.state})
      </Text>{" "}
      {formatBytes(holder.bytes)}
      {!holder.instance_name.startsWith(holder.model_name) && (
        <Text span size="xs" c="dimmed">
          {" "}
          · model {holder.model_name}
        </Text>
      )}
    </Text>
  );
}

function DeviceRow({ device }: { device: DeviceDetail }) {
  return (
    <Table.Tr>
      <Table.Td>
        <Anchor component={Link} to={`/workers/${device.worker_id}`} size="sm">
          {device.worker_name}
        </Anchor>
      </Table.Td>
      <Table.Td>
        <Group gap={6}>
          <Text size="sm" ff="monospace">
            {device.id}
          </Text>
          {device.type === "cpu" && (
            <Badge size="xs" variant="light" color="gray">
              host RAM
            </Badge>
          )}
          {device.simulated && (
            <Badge size="xs" variant="outline" color="gray">
              simulated
            </Badge>
          )}
        </Group>
        <Text size="xs" c="dimmed">
          {device.name}
          {device.compute_capability ? ` · compute ${device.compute_capability}` : ""}
          {device.cores ? ` · ${device.cores} cores` : ""}
        </Text>
      </Table.Td>
      <Table.Td>{device.vendor || DASH}</Table.Td>
      <Table.Td miw={220}>
        <DashMemoryBar allocated={device.allocated} used={device.memory_used} total={device.memory_total} size="xs" />
      </Table.Td>
      <Table.Td ta="right">{device.utilization === null ? DASH : `${Math.round(device.utilization)}%`}</Table.Td>
      <Table.Td ta="right">{device.temperature === null ? DASH : `${Math.round(device.temperature)} °C`}</Table.Td>
      <Table.Td>
        {device.holders.length === 0 ? (
          <Text size="sm" c="dimmed">
            {DASH}
          </Text>
        ) : (
          <Stack gap={2}>
            {device.holders.map((holder) => (
              <Holder key={holder.instance_id} holder={holder} />
            ))}
          </Stack>
        )}
      </Table.Td>
    </Table.Tr>
  );
}

export function DashDeviceTable({ devices }: { devices: DeviceDetail[] }) {
  return (
    <Table.ScrollContainer minWidth={980}>
      <Table striped highlightOnHover verticalSpacing="xs" aria-label="Devices">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Worker</Table.Th>
            <Table.Th>Device</Table.Th>
            <Table.Th>Vendor</Table.Th>
            <Table.Th>Memory allocated / used / total</Table.Th>
            <Table.Th ta="right">Utilization</Table.Th>
            <Table.Th ta="right">Temperature</Table.Th>
            <Table.Th>Held by</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {devices.map((device) => (
            <DeviceRow key={device.id} device={device} />
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
