// A deployment's instances, live: each with its state and why, where it runs and how often it restarted.
// With none, it says why: an on-demand deployment (min_replicas 0) loads on its first request, any
// other one runs none until its replicas are raised.

import { Anchor, Paper, Table, Text } from "@mantine/core";
import { Link } from "react-router";

import type { Instance, Model } from "../api/types";
import { InstanceStateBadge } from "./InstanceStateBadge";

/** The text shown when a deployment has no instance. */
export function noInstancesText(model: Pick<Model, "min_replicas"> | undefined): string {
  return model?.min_replicas === 0
    ? "No instances: this model is on demand and loads on its first request."
    : "No instances: set Replicas above 0 to run some.";
}

/** `model` decides the text shown with no instance; without it, the fixed deployment's. */
export function ModelInstancesTable({
  instances,
  model,
}: {
  instances: Instance[];
  model?: Pick<Model, "min_replicas">;
}) {
  if (instances.length === 0) {
    return (
      <Paper withBorder p="md">
        <Text size="sm" c="dimmed">
          {noInstancesText(model)}
        </Text>
      </Paper>
    );
  }
  return (
    <Table striped highlightOnHover>
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Name</Table.Th>
          <Table.Th>State</Table.Th>
          <Table.Th>Message</Table.Th>
          <Table.Th>Worker</Table.Th>
          <Table.Th>Devices</Table.Th>
          <Table.Th>Restarts</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {instances.map((instance) => (
          <Table.Tr key={instance.id}>
            <Table.Td>
              <Anchor component={Link} to={`/instances/${instance.id}`}>
                {instance.name}
              </Anchor>
            </Table.Td>
            <Table.Td>
              <InstanceStateBadge state={instance.state} />
            </Table.Td>
            <Table.Td>
              <Text size="xs" c="dimmed" maw={360} style={{ whiteSpace: "pre-wrap" }}>
                {instance.state_message ?? ""}
              </Text>
            </Table.Td>
            <Table.Td>
              {instance.worker_id !== null ? (
                <Anchor component={Link} to={`/workers/${instance.worker_id}`} size="sm">
                  {instance.worker_name ?? instance.worker_id}
                </Anchor>
              ) : (
                <Text size="sm" c="dimmed">
                  not placed
                </Text>
              )}
            </Table.Td>
            <Table.Td>
              <Text size="sm">{instance.device_ids.length ? instance.device_ids.join(", ") : "—"}</Text>
            </Table.Td>
            <Table.Td>
              <Text size="sm">{instance.restart_count}</Text>
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
