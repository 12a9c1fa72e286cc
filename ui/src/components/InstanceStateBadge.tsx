// An instance's state as a badge, with its reason beside it when asked: every state says why.

import { Badge, Stack, Text } from "@mantine/core";

import type { InstanceState } from "../api/types";

export const INSTANCE_STATE_COLORS: Record<InstanceState, string> = {
  pending: "gray",
  scheduled: "blue",
  downloading: "cyan",
  starting: "yellow",
  running: "green",
  error: "red",
  unreachable: "orange",
  stopping: "gray",
};

export function InstanceStateBadge({ state, count }: { state: InstanceState; count?: number }) {
  return (
    <Badge color={INSTANCE_STATE_COLORS[state] ?? "gray"} variant="light" tt="none">
      {count === undefined ? state : `${count} ${state}`}
    </Badge>
  );
}

export function InstanceStateWithMessage({ state, message }: { state: InstanceState; message: string | null }) {
  return (
    <Stack gap={2} align="flex-start">
      <InstanceStateBadge state={state} />
      {message && (
        <Text size="xs" c="dimmed" maw={420} style={{ whiteSpace: "pre-wrap" }}>
          {message}
        </Text>
      )}
    </Stack>
  );
}
