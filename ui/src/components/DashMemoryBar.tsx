// A device's memory as gpufleet sees it: what its instances' claims have *allocated* beside what is
// *used* right now (reported by the worker, by anyone), both against the total.

import { Group, Progress, Stack, Text } from "@mantine/core";

import { formatBytes } from "../lib/format";

const share = (part: number, total: number) => (total > 0 ? Math.min(100, (100 * Math.max(0, part)) / total) : 0);

export function memoryLine(allocated: number, used: number, total: number): string {
  return `allocated ${formatBytes(allocated)} · used ${formatBytes(used)} · total ${formatBytes(total)}`;
}

export function DashMemoryBar({
  allocated,
  used,
  total,
  size = "md",
  withText = true,
}: {
  allocated: number;
  used: number;
  total: number;
  size?: "xs" | "sm" | "md";
  withText?: boolean;
}) {
  return (
    <Stack gap={3}>
      <Progress.Root size={size} title={`allocated by gpufleet: ${formatBytes(allocated)} of ${formatBytes(total)}`}>
        <Progress.Section value={share(allocated, total)} color="blue" aria-label="allocated" />
      </Progress.Root>
      <Progress.Root size={size} title={`used (live): ${formatBytes(used)} of ${formatBytes(total)}`}>
        <Progress.Section value={share(used, total)} color="orange" aria-label="used" />
      </Progress.Root>
      {withText && (
        <Text size="xs" c={allocated > total ? "red" : "dimmed"}>
          {memoryLine(allocated, used, total)}
        </Text>
      )}
    </Stack>
  );
}

export function DashMemoryLegend() {
  return (
    <Group gap="md">
      <Group gap={4}>
        <Progress w={24} size="sm" value={100} color="blue" aria-hidden />
        <Text size="xs" c="dimmed">
          allocated: claims of gpufleet's instances
        </Text>
      </Group>
      <Group gap={4}>
        <Progress w={24} size="sm" value={100} color="orange" aria-hidden />
        <Text size="xs" c="dimmed">
          used: live, reported by the worker (anyone's)
        </Text>
      </Group>
    </Group>
  );
}
