// Creating an API key (its secret shown once, with how to use it) and editing a key's limits.

import { Alert, Button, Code, CopyButton, Group, Modal, Stack, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { IconPlus } from "@tabler/icons-react";
import { useState, type FormEvent } from "react";

import { api, describeError } from "../api/client";
import type { ApiKey, ApiKeyCreated } from "../api/types";
import { createKeyBody, EMPTY_KEY_FORM, formFromKey, updateKeyBody, usageExample, type KeyForm } from "../lib/apiKeyForm";
import { ErrorBox } from "./ErrorBox";
import { KeyFormFields } from "./KeyFormFields";

function Copy({ value }: { value: string }) {
  return (
    <CopyButton value={value}>
      {({ copied, copy }) => (
        <Button size="xs" variant="light" color={copied ? "teal" : "blue"} onClick={copy}>
          {copied ? "Copied" : "Copy"}
        </Button>
      )}
    </CopyButton>
  );
}

function KeyShownOnce({ created, onDone }: { created: ApiKeyCreated; onDone: () => void }) {
  const baseUrl = `${window.location.origin}/v1`;
  const model = created.allowed_models?.[0];
  const example = usageExample(baseUrl, created.key, model);
  return (
    <Stack>
      <Alert color="yellow" title="This key is shown once: copy it now.">
        gpufleet keeps only a hash of it: nobody can show it again. Lost, it is replaced by a new key.
      </Alert>
      <Code block data-testid="new-api-key" style={{ userSelect: "all", wordBreak: "break-all", whiteSpace: "pre-wrap" }}>
        {created.key}
      </Code>
      <Group justify="flex-end">
        <Copy value={created.key} />
      </Group>
      <Text size="sm">
        Use it with any OpenAI client: base URL <Code>{baseUrl}</Code>, header{" "}
        <Code>Authorization: Bearer &lt;key&gt;</Code>. For example:
      </Text>
      <Code block style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}>
        {example}
      </Code>
      <Group justify="flex-end">
        <Button onClick={onDone}>Done</Button>
      </Group>
    </Stack>
  );
}

export function KeyCreateButton({ onChanged }: { onChanged: () => void }) {
  const [opened, setOpened] = useState(false);
  const [form, setForm] = useState<KeyForm>(EMPTY_KEY_FORM);
  const [created, setCreated] = useState<ApiKeyCreated | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const open = () => {
    setForm(EMPTY_KEY_FORM);
    setCreated(null);
    setError(null);
    setOpened(true);
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const key = await api<ApiKeyCreated>("/api/api-keys", { body: createKeyBody(form) });
      setCreated(key);
      onChanged();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <Button leftSection={<IconPlus size={16} />} onClick={open}>
        Create API key
      </Button>
      <Modal
        opened={opened}
        onClose={() => setOpened(false)}
        title={created ? `API key "${created.name}" created` : "Create API key"}
        size="lg"
        closeOnClickOutside={!created}
      >
        {created ? (
          <KeyShownOnce created={created} onDone={() => setOpened(false)} />
        ) : (
          <form onSubmit={submit}>
            <Stack>
              <KeyFormFields form={form} onChange={setForm} withName />
              <ErrorBox error={error} title="The key was not created" />
              <Group justify="flex-end">
                <Button variant="default" onClick={() => setOpened(false)}>
                  Cancel
                </Button>
                <Button type="submit" loading={busy}>
                  Create
                </Button>
              </Group>
            </Stack>
          </form>
        )}
      </Modal>
    </>
  );
}

export function KeyEditButton({ apiKey, onChanged }: { apiKey: ApiKey; onChanged: () => void }) {
  const [opened, setOpened] = useState(false);
  const [form, setForm] = useState<KeyForm>(() => formFromKey(apiKey));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const open = () => {
    setForm(formFromKey(apiKey));
    setError(null);
    setOpened(true);
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    let body;
    try {
      body = updateKeyBody(form, apiKey);
    } catch (caught) {
      setError(describeError(caught));
      return;
    }
    if (Object.keys(body).length === 0) {
      setOpened(false);
      return;
    }
    setBusy(true);
    try {
      await api(`/api/api-keys/${apiKey.id}`, { method: "PATCH", body });
      notifications.show({ color: "green", title: "Limits saved", message: `API key "${apiKey.name}" was updated.` });
      setOpened(false);
      onChanged();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <Button size="xs" variant="light" onClick={open}>
        Edit limits
      </Button>
      <Modal opened={opened} onClose={() => setOpened(false)} title={`Limits of "${apiKey.name}"`} size="lg">
        <form onSubmit={submit}>
          <Stack>
            <KeyFormFields form={form} onChange={setForm} withName={false} />
            <ErrorBox error={error} title="The limits were not saved" />
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpened(false)}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Save
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}
