// What POST /api/models/preview answered: where each replica would go, or — when it cannot be
// placed — the scheduler's own message, word for word, and each worker's reason.

import { Alert, Paper, Stack, Table, Text, Title } from "@mantine/core";

import type { PreviewResult } from "../api/types";
import { ModelPlacementTable } from "./ModelPlacement";

export function ModelPreview({ result }: { result: PreviewResult }) {
  return (
    <Stack gap="sm" mt="md" data-testid="placement-preview">
      <Title order={4}>Placement preview</Title>
      <Alert
        color={result.schedulable ? "green" : "orange"}
        title={result.schedulable ? "It fits" : "It cannot be placed"}
      >
        <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
          {result.message}
        </Text>
      </Alert>
      {result.placements.map((placement, index) => (
        <Paper key={index} withBorder p="sm">
          <Text fw={600} size="sm">
            Replica {index + 1}
          </Text>
          <ModelPlacementTable
            placement={{
              worker: <Text size="sm">{placement.worker_name}</Text>,
              mode: placement.mode,
              device_ids: placement.device_ids,
              claim: placement.claim,
              subordinates: placement.subordinates.map((sub) => ({
                worker: <Text size="sm" fw={500}>{sub.worker_name}</Text>,
                device_ids: sub.device_ids,
                claim: sub.claim,
              })),
            }}
          />
        </Paper>
      ))}
      {result.reasons.length > 0 && (
        <Table striped withTableBorder>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Worker</Table.Th>
              <Table.Th>Reason</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {result.reasons.map((reason, index) => (
              <Table.Tr key={`${reason.worker_name}-${index}`}>
                <Table.Td>{reason.worker_name}</Table.Td>
                <Table.Td style={{ whiteSpace: "pre-wrap" }}>{reason.reason}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}
