// Pieces the worker pages share: the state badge with its reason, labels as badges, and a clock
// that ticks so heartbeat ages stay current without reading anything again.

import { Badge, Group, Stack, Text } from "@mantine/core";
import { useEffect, useState } from "react";

import type { WorkerState } from "../api/types";
import { formatLabel, isAutoLabel, labelEntries } from "../lib/labels";

const STATE_COLORS: Record<WorkerState, string> = {
  ready: "green",
  not_ready: "gray",
  unreachable: "red",
  maintenance: "yellow",
};

/** Now, in ms, re-rendering the caller every `intervalMs`. */
export function useNow(intervalMs = 5000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs]);
  return now;
}

export function WorkerStateBadge({ state, message }: { state: WorkerState; message?: string | null }) {
  return (
    <Stack gap={2} align="flex-start">
      <Badge color={STATE_COLORS[state] ?? "gray"} variant="light">
        {state.replace("_", " ")}
      </Badge>
      {message && (
        <Text size="xs" c="dimmed" maw={220}>
          {message}
        </Text>
      )}
    </Stack>
  );
}

export function WorkerLabelBadges({ labels }: { labels: Record<string, string> }) {
  const entries = labelEntries(labels);
  if (entries.length === 0) return <Text size="sm" c="dimmed">none</Text>;
  return (
    <Group gap={4}>
      {entries.map(([key, value]) => (
        <Badge
          key={key}
          variant={isAutoLabel(key) ? "outline" : "light"}
          color={isAutoLabel(key) ? "gray" : "blue"}
          tt="none"
          title={isAutoLabel(key) ? "set automatically from the worker's hardware" : undefined}
        >
          {formatLabel(key, value)}
        </Badge>
      ))}
    </Group>
  );
}

/** "llama.cpp b0c1e57 (cpu)" per engine the worker has. */
export function engineList(engines: Record<string, string>): string[] {
  return Object.entries(engines).map(([name, version]) => `${name} ${version}`);
}
