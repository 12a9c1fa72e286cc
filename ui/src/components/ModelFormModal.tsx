// The deploy form in a dialog, with "Preview placement" (the real scheduler, nothing created) and a
// submit button. Deploying and editing both use it; what submit does is the caller's. A refusal keeps
// the form as it is and shows the server's message; a min above max is refused here first, in words.

import { Alert, Button, Group, Modal, Stack } from "@mantine/core";
import { useState, type ReactNode } from "react";

import { api, describeError } from "../api/client";
import type { PreviewResult } from "../api/types";
import { previewRequest, type DeployForm } from "../lib/deployRequest";
import { scalingProblem } from "../lib/scaling";
import { ErrorBox } from "./ErrorBox";
import { ModelDeployForm } from "./ModelDeployForm";
import { ModelPreview } from "./ModelPreview";

interface Props {
  opened: boolean;
  onClose: () => void;
  title: string;
  initial: DeployForm;
  submitLabel: string;
  onSubmit: (form: DeployForm) => Promise<void>; // throws to keep the dialog open with the message
  note?: ReactNode;
}

function ModelFormBody({ onClose, initial, submitLabel, onSubmit, note }: Omit<Props, "opened" | "title">) {
  const [form, setForm] = useState<DeployForm>(initial);
  const [preview, setPreview] = useState<PreviewResult | null>(null);
  const [previewError, setPreviewError] = useState<string | null>(null);
  const [previewing, setPreviewing] = useState(false);
  const [submitError, setSubmitError] = useState<string | null>(null);
  const [submitting, setSubmitting] = useState(false);

  const change = (next: DeployForm) => {
    setForm(next);
    setPreview(null); // an answer about other values would mislead
    setPreviewError(null);
  };

  const runPreview = async () => {
    setPreview(null);
    const problem = scalingProblem(form);
    setPreviewError(problem);
    if (problem) return;
    setPreviewing(true);
    try {
      setPreview(await api<PreviewResult>("/api/models/preview", { body: previewRequest(form) }));
    } catch (error) {
      setPreviewError(describeError(error));
    } finally {
      setPreviewing(false);
    }
  };

  const submit = async () => {
    const problem = scalingProblem(form);
    setSubmitError(problem);
    if (problem) return;
    setSubmitting(true);
    try {
      await onSubmit(form);
    } catch (error) {
      setSubmitError(describeError(error));
      setSubmitting(false);
    }
  };

  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        void submit();
      }}
    >
      <Stack gap="sm">
        {note && (
          <Alert color="blue" variant="light">
            {note}
          </Alert>
        )}
        <ModelDeployForm form={form} onChange={change} />
        <ErrorBox error={submitError} title="Not saved" />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button variant="light" onClick={() => void runPreview()} loading={previewing}>
            Preview placement
          </Button>
          <Button type="submit" loading={submitting}>
            {submitLabel}
          </Button>
        </Group>
        <ErrorBox error={previewError} title="Cannot preview" />
        {preview && <ModelPreview result={preview} />}
      </Stack>
    </form>
  );
}

export function ModelFormModal({ opened, title, onClose, ...rest }: Props) {
  return (
    <Modal opened={opened} onClose={onClose} title={title} size="xl">
      {opened && <ModelFormBody onClose={onClose} {...rest} />}
    </Modal>
  );
}
