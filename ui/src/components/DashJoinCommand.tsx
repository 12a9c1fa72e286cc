// No worker yet: the command that adds a machine to this cluster (GET /api/workers/join).

import { ActionIcon, Card, Code, CopyButton, Group, Loader, Text, Title, Tooltip } from "@mantine/core";
import { IconCheck, IconCopy } from "@tabler/icons-react";

import type { Worker } from "../api/types";
import { ErrorBox } from "./ErrorBox";
import { useDashFetch } from "./DashFetch";

interface Join {
  server_url: string;
  token: string;
  command: string;
}

export function DashJoinCommand({ workers }: { workers: Worker[] }) {
  const join = useDashFetch<Join>(workers.length === 0 ? "/api/workers/join" : null);
  if (workers.length > 0) return null;
  return (
    <Card withBorder my="md">
      <Title order={4}>Add a machine: run this on it</Title>
      <Text size="sm" c="dimmed" mb="xs">
        This cluster has no worker yet (the server was started with --disable-worker). Any machine that runs this
        command joins it.
      </Text>
      <ErrorBox error={join.error} />
      {join.loading && <Loader size="sm" />}
      {join.data && (
        <Group gap="xs" wrap="nowrap" align="flex-start">
          <Code block style={{ flex: 1, whiteSpace: "pre-wrap", wordBreak: "break-all" }}>
            {join.data.command}
          </Code>
          <CopyButton value={join.data.command}>
            {({ copied, copy }) => (
              <Tooltip label={copied ? "Copied" : "Copy"}>
                <ActionIcon variant="light" onClick={copy} aria-label="Copy the command">
                  {copied ? <IconCheck size={16} /> : <IconCopy size={16} />}
                </ActionIcon>
              </Tooltip>
            )}
          </CopyButton>
        </Group>
      )}
    </Card>
  );
}
