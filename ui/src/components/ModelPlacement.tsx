// One placement as the server decided it (a preview's replica or an instance's claim): worker, mode,
// devices, bytes claimed per device and in RAM, layers on GPU, tensor split and the RPC
// subordinates lending devices. Nothing is recomputed here: it is the server's claim as it is.

import { Badge, Group, Stack, Table, Text } from "@mantine/core";
import type { ReactNode } from "react";

import type { Claim } from "../api/types";
import { claimParts, layersText, tensorSplitText } from "../lib/modelText";

export interface PlacementSubordinate {
  worker: ReactNode;
  device_ids: string[];
  claim: Claim | null;
  rpc?: string | null; // host:port
  pid?: number | null;
  message?: string | null;
}

export interface PlacementFacts {
  worker: ReactNode;
  mode: string | null | undefined;
  device_ids: string[];
  claim: Claim | null;
  subordinates: PlacementSubordinate[];
}

export function ModelClaimBytes({ claim }: { claim: Claim | null }) {
  const parts = claimParts(claim);
  if (parts.length === 0) return <Text size="sm" c="dimmed">nothing claimed</Text>;
  return (
    <Group gap={4}>
      {parts.map((part) => (
        <Badge key={part} variant="outline" color="gray" tt="none">
          {part}
        </Badge>
      ))}
    </Group>
  );
}

export function ModelDeviceList({ ids }: { ids: string[] }) {
  if (ids.length === 0) return <Text size="sm" c="dimmed">none</Text>;
  return <Text size="sm">{ids.join(", ")}</Text>;
}

export function ModelFactRow({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Table.Tr>
      <Table.Th w={170} fw={500} c="dimmed">
        {label}
      </Table.Th>
      <Table.Td>{typeof children === "string" ? <Text size="sm">{children}</Text> : children}</Table.Td>
    </Table.Tr>
  );
}

export function ModelPlacementTable({ placement, extra }: { placement: PlacementFacts; extra?: ReactNode }) {
  const layers = layersText(placement.claim);
  const split = tensorSplitText(placement.claim);
  return (
    <Table withRowBorders={false} verticalSpacing={4}>
      <Table.Tbody>
        <ModelFactRow label="Worker">{placement.worker}</ModelFactRow>
        <ModelFactRow label="Mode">{placement.mode ?? "—"}</ModelFactRow>
        <ModelFactRow label="Devices">
          <ModelDeviceList ids={placement.device_ids} />
        </ModelFactRow>
        <ModelFactRow label="Claim">
          <ModelClaimBytes claim={placement.claim} />
        </ModelFactRow>
        <ModelFactRow label="Layers on GPU">{layers ?? "—"}</ModelFactRow>
        {split && <ModelFactRow label="Tensor split">{split}</ModelFactRow>}
        {placement.subordinates.length > 0 && (
          <ModelFactRow label="RPC subordinates">
            <Stack gap={6}>
              {placement.subordinates.map((sub, index) => (
                <Stack key={index} gap={2}>
                  <Group gap="xs">
                    {sub.worker}
                    <ModelDeviceList ids={sub.device_ids} />
                    {sub.rpc && <Text size="sm">rpc {sub.rpc}</Text>}
                    {sub.pid ? <Text size="sm">pid {sub.pid}</Text> : null}
                  </Group>
                  <ModelClaimBytes claim={sub.claim} />
                  {sub.message && (
                    <Text size="xs" c="red">
                      {sub.message}
                    </Text>
                  )}
                </Stack>
              ))}
            </Stack>
          </ModelFactRow>
        )}
        {extra}
      </Table.Tbody>
    </Table>
  );
}
