// Edit a worker's labels: rows of key and value (add, remove), saved with PATCH {labels}. The
// automatic labels (os, arch, gpu-vendor) are shown read-only: the server keeps them.

import { ActionIcon, Badge, Button, Group, Modal, Stack, Text, TextInput } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { IconPlus, IconTrash } from "@tabler/icons-react";
import { useState } from "react";

import { api, describeError } from "../api/client";
import type { Worker } from "../api/types";
import { AUTO_LABELS, editableRows, formatLabel, rowsToLabels, type LabelRow } from "../lib/labels";
import { ErrorBox } from "./ErrorBox";

export function WorkerLabelsButton({ worker }: { worker: Worker }) {
  const [opened, setOpened] = useState(false);
  return (
    <>
      <Button size="xs" variant="light" onClick={() => setOpened(true)}>
        Edit labels
      </Button>
      <Modal opened={opened} onClose={() => setOpened(false)} title={`Labels of ${worker.name}`} size="lg">
        {opened && <WorkerLabelsEditor worker={worker} onDone={() => setOpened(false)} />}
      </Modal>
    </>
  );
}

function WorkerLabelsEditor({ worker, onDone }: { worker: Worker; onDone: () => void }) {
  const [rows, setRows] = useState<LabelRow[]>(() => editableRows(worker.labels));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const automatic = AUTO_LABELS.filter((key) => key in worker.labels);

  const change = (index: number, patch: Partial<LabelRow>) =>
    setRows((current) => current.map((row, i) => (i === index ? { ...row, ...patch } : row)));

  async function save() {
    const result = rowsToLabels(rows);
    if (result.error !== null) {
      setError(result.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api(`/api/workers/${worker.id}`, { method: "PATCH", body: { labels: result.labels } });
      notifications.show({ color: "green", title: "Labels saved", message: `${worker.name}'s labels were saved.` });
      onDone();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Stack>
      {automatic.length > 0 && (
        <Group gap={4}>
          <Text size="sm" c="dimmed">
            Automatic (from the hardware, kept by the server):
          </Text>
          {automatic.map((key) => (
            <Badge key={key} variant="outline" color="gray" tt="none">
              {formatLabel(key, worker.labels[key] ?? "")}
            </Badge>
          ))}
        </Group>
      )}
      {rows.length === 0 && (
        <Text size="sm" c="dimmed">
          No labels of its own yet. Models pick workers by label with their worker selector.
        </Text>
      )}
      {rows.map((row, index) => (
        <Group key={index} align="flex-end" wrap="nowrap">
          <TextInput
            label="Key"
            value={row.key}
            onChange={(event) => change(index, { key: event.currentTarget.value })}
            style={{ flex: 1 }}
          />
          <TextInput
            label="Value"
            value={row.value}
            onChange={(event) => change(index, { value: event.currentTarget.value })}
            style={{ flex: 1 }}
          />
          <ActionIcon
            variant="subtle"
            color="red"
            size="lg"
            aria-label={`Remove label ${row.key || index + 1}`}
            onClick={() => setRows((current) => current.filter((_, i) => i !== index))}
          >
            <IconTrash size={16} />
          </ActionIcon>
        </Group>
      ))}
      <Group>
        <Button
          variant="default"
          size="xs"
          leftSection={<IconPlus size={14} />}
          onClick={() => setRows((current) => [...current, { key: "", value: "" }])}
        >
          Add label
        </Button>
      </Group>
      <ErrorBox error={error} title="Labels not saved" />
      <Group justify="flex-end">
        <Button variant="default" onClick={onDone}>
          Cancel
        </Button>
        <Button loading={busy} onClick={() => void save()}>
          Save labels
        </Button>
      </Group>
    </Stack>
  );
}
