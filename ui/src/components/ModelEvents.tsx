// What gpufleet did to a deployment on its own (GET /api/models/{id}/events, newest first): loads,
// unloads, scaling and evictions. Read again whenever the model's watch event arrives (a new model
// object from the stream), since each of those changes the model too; no polling.

import { Badge, Loader, Paper, Stack, Table, Text } from "@mantine/core";
import { useEffect, useState } from "react";

import { api, describeError } from "../api/client";
import type { Model, ModelEvent, ModelEventKind } from "../api/types";
import { formatAge } from "../lib/format";
import { eventKindText } from "../lib/scalingText";
import { ErrorBox } from "./ErrorBox";

const SHOWN = 20;

const COLORS: Record<ModelEventKind, string> = {
  load: "green",
  unload: "gray",
  scale_up: "blue",
  scale_down: "cyan",
  evict: "orange",
  evicted: "red",
};

interface Answer {
  modelId: number;
  events: ModelEvent[] | null;
  error: string | null;
}

function useModelEvents(model: Model): Answer | null {
  const [answer, setAnswer] = useState<Answer | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    api<ModelEvent[]>(`/api/models/${model.id}/events`, { signal: controller.signal }).then(
      (events) => setAnswer({ modelId: model.id, events, error: null }),
      (caught: unknown) => {
        if (!controller.signal.aborted) setAnswer({ modelId: model.id, events: null, error: describeError(caught) });
      },
    );
    return () => controller.abort();
  }, [model]); // the object itself: a new one per watch event, so each event reads the list again
  return answer !== null && answer.modelId === model.id ? answer : null; // the last list shows while reading
}

export function ModelEvents({ model }: { model: Model }) {
  const answer = useModelEvents(model);
  if (answer === null) return <Loader size="sm" />;
  if (answer.error !== null) return <ErrorBox error={answer.error} title="Cannot read the events" />;
  const events = answer.events ?? [];
  if (events.length === 0) {
    return (
      <Paper withBorder p="md">
        <Text size="sm" c="dimmed">
          No events yet: loads, unloads, scaling and evictions appear here.
        </Text>
      </Paper>
    );
  }
  return (
    <Stack gap={4}>
      <Table striped aria-label="Model events">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>When</Table.Th>
            <Table.Th>Event</Table.Th>
            <Table.Th>Message</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {events.slice(0, SHOWN).map((event) => (
            <Table.Tr key={event.id}>
              <Table.Td>
                <Text size="sm" title={event.created_at}>
                  {formatAge(event.created_at)}
                </Text>
              </Table.Td>
              <Table.Td>
                <Badge color={COLORS[event.kind] ?? "gray"} variant="light" tt="none">
                  {eventKindText(event.kind)}
                </Badge>
              </Table.Td>
              <Table.Td>
                <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
                  {event.message}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {events.length > SHOWN && (
        <Text size="xs" c="dimmed">
          {`The ${SHOWN} newest of ${events.length} events.`}
        </Text>
      )}
    </Stack>
  );
}
