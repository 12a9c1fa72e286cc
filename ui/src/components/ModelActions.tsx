// What an admin changes on a deployment: its replicas (in place), its whole spec (a roll, one
// instance at a time), or deleting it. Each shows the server's message when refused.

import { Button, Group, Modal, NumberInput, Stack, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useState } from "react";

import { api, describeError } from "../api/client";
import type { Model } from "../api/types";
import type { DeployForm } from "../lib/deployRequest";
import { modelPatch, modelToForm } from "../lib/modelForm";
import { ErrorBox } from "./ErrorBox";
import { ModelFormModal } from "./ModelFormModal";
import { showPlacementWarnings } from "./placementWarnings";

export const ROLL_NOTE =
  "Changing anything but replicas, the description or the scaling and queue fields (min/max replicas, idle " +
  "timeout, priority, max concurrent requests, max queue, queue timeout) replaces the instances one at a time: " +
  "a new one runs before an old one stops.";

export function ModelReplicasEditor({ model }: { model: Model }) {
  const [draft, setDraft] = useState<number | null>(null); // null: showing the model's own value
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const value = draft ?? model.replicas;

  const save = async () => {
    setSaving(true);
    setError(null);
    try {
      const saved = await api<Model>(`/api/models/${model.id}`, { method: "PATCH", body: { replicas: value } });
      notifications.show({ color: "green", title: "Replicas saved", message: `${model.name}: ${value} replica(s)` });
      showPlacementWarnings(saved);
      setDraft(null);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setSaving(false);
    }
  };

  return (
    <Stack gap={4}>
      <Group align="flex-end" gap="xs">
        <NumberInput
          label="Replicas"
          min={0}
          max={1000}
          allowDecimal={false}
          w={120}
          value={value}
          onChange={(next) => setDraft(typeof next === "number" ? next : Number(next) || 0)}
        />
        <Button onClick={() => void save()} loading={saving} disabled={value === model.replicas}>
          Save replicas
        </Button>
      </Group>
      <ErrorBox error={error} title="Replicas not saved" />
    </Stack>
  );
}

export function ModelEditButton({ model }: { model: Model }) {
  const [opened, setOpened] = useState(false);

  const save = async (form: DeployForm) => {
    const patch = modelPatch(model, form);
    if (Object.keys(patch).length > 0) {
      const saved = await api<Model>(`/api/models/${model.id}`, { method: "PATCH", body: patch });
      notifications.show({ color: "green", title: "Model saved", message: `${model.name}: changes applied` });
      showPlacementWarnings(saved);
    } else {
      notifications.show({ color: "gray", title: "Nothing changed", message: model.name });
    }
    setOpened(false);
  };

  return (
    <>
      <Button variant="default" onClick={() => setOpened(true)}>
        Edit
      </Button>
      <ModelFormModal
        opened={opened}
        onClose={() => setOpened(false)}
        title={`Edit ${model.name}`}
        initial={modelToForm(model)}
        submitLabel="Save changes"
        onSubmit={save}
        note={ROLL_NOTE}
      />
    </>
  );
}

export function ModelDeleteButton({ model, onDeleted }: { model: Model; onDeleted: () => void }) {
  const [opened, setOpened] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const remove = async () => {
    setDeleting(true);
    setError(null);
    try {
      await api(`/api/models/${model.id}`, { method: "DELETE" });
      notifications.show({ color: "green", title: "Model deleted", message: `${model.name}: its instances stop` });
      setOpened(false);
      onDeleted();
    } catch (e) {
      setError(describeError(e));
      setDeleting(false);
    }
  };

  return (
    <>
      <Button color="red" variant="light" onClick={() => setOpened(true)}>
        Delete
      </Button>
      <Modal opened={opened} onClose={() => setOpened(false)} title="Delete model">
        <Stack>
          <Text>{`Delete model ${model.name}? Its instances stop.`}</Text>
          <ErrorBox error={error} title="Not deleted" />
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setOpened(false)}>
              Cancel
            </Button>
            <Button color="red" onClick={() => void remove()} loading={deleting}>
              Delete model
            </Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
