// A button whose action must be confirmed first (deleting a worker, a key, a user): a dialog says
// what will happen; a refusal from the API is shown in it, in the server's words.

import { Button, Group, Modal, Stack, Text, type ButtonProps } from "@mantine/core";
import { useState, type ReactNode } from "react";

import { describeError } from "../api/client";
import { ErrorBox } from "./ErrorBox";

interface Props {
  label: string; // the button's name, e.g. "Delete"
  title: string; // the dialog's title
  message: ReactNode; // what will happen
  confirmLabel: string; // the confirming button, e.g. "Delete worker"
  onConfirm: () => Promise<void>;
  color?: ButtonProps["color"];
  size?: ButtonProps["size"];
  variant?: ButtonProps["variant"];
}

export function UserConfirmButton({
  label,
  title,
  message,
  confirmLabel,
  onConfirm,
  color = "red",
  size = "xs",
  variant = "light",
}: Props) {
  const [opened, setOpened] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const close = () => {
    setOpened(false);
    setError(null);
  };

  async function confirm() {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      close();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <Button size={size} color={color} variant={variant} onClick={() => setOpened(true)}>
        {label}
      </Button>
      <Modal opened={opened} onClose={close} title={title}>
        <Stack>
          {typeof message === "string" ? <Text size="sm">{message}</Text> : message}
          <ErrorBox error={error} title="Refused" />
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button color={color} loading={busy} onClick={() => void confirm()}>
              {confirmLabel}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
