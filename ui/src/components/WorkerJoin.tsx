// How a machine joins the cluster: the command from GET /api/workers/join, copyable, shown in the
// empty state of the Workers page and behind its "Add worker" button.

import { Button, Code, CopyButton, Group, Loader, Modal, Stack, Text } from "@mantine/core";
import { IconPlus } from "@tabler/icons-react";
import { useEffect, useState } from "react";

import { api, describeError } from "../api/client";
import { ErrorBox } from "./ErrorBox";

interface Join {
  server_url: string;
  token: string;
  command: string;
}

export function WorkerJoinCommand() {
  const [join, setJoin] = useState<Join | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    api<Join>("/api/workers/join", { signal: controller.signal }).then(setJoin, (caught: unknown) => {
      if (!controller.signal.aborted) setError(describeError(caught));
    });
    return () => controller.abort();
  }, []);

  if (error) return <ErrorBox error={error} title="Cannot read the join command" />;
  if (!join) return <Loader size="sm" />;
  return (
    <Stack gap="xs">
      <Code block style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}>
        {join.command}
      </Code>
      <Group justify="space-between">
        <Text size="xs" c="dimmed">
          The machine must reach {join.server_url}; it appears here once it registers.
        </Text>
        <CopyButton value={join.command}>
          {({ copied, copy }) => (
            <Button size="xs" variant="light" color={copied ? "teal" : "blue"} onClick={copy}>
              {copied ? "Copied" : "Copy"}
            </Button>
          )}
        </CopyButton>
      </Group>
    </Stack>
  );
}

export function WorkerAddButton() {
  const [opened, setOpened] = useState(false);
  return (
    <>
      <Button leftSection={<IconPlus size={16} />} onClick={() => setOpened(true)}>
        Add worker
      </Button>
      <Modal opened={opened} onClose={() => setOpened(false)} title="Add worker" size="lg">
        <Stack>
          <Text size="sm">Run this on a machine to add it:</Text>
          {opened && <WorkerJoinCommand />}
        </Stack>
      </Modal>
    </>
  );
}
