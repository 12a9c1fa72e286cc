// API keys: the signed-in person's keys (admins: everyone's with "All users"), created with their
// secret shown once, limited to models, an expiry, requests per minute and tokens per day.

import { Badge, Center, Group, Loader, Paper, Stack, Switch, Table, Text, Title, Tooltip } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useCallback, useEffect, useState } from "react";

import { api, describeError } from "../api/client";
import type { ApiKey } from "../api/types";
import { ErrorBox } from "../components/ErrorBox";
import { KeyCreateButton, KeyEditButton } from "../components/KeyDialogs";
import { UserConfirmButton } from "../components/UserConfirmButton";
import { useNow } from "../components/WorkerCommon";
import { formatAge, formatCount } from "../lib/format";
import { useAuth } from "../state/auth";

function formatDate(iso: string): string {
  return new Date(iso).toISOString().slice(0, 10);
}

export function ApiKeysPage() {
  const { me } = useAuth();
  const admin = me.role === "admin";
  const [all, setAll] = useState(false);
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0); // bumped to read the list again
  const reload = useCallback(() => setVersion((v) => v + 1), []);

  useEffect(() => {
    const controller = new AbortController();
    api<ApiKey[]>(all ? "/api/api-keys?all=true" : "/api/api-keys", { signal: controller.signal }).then(
      (found) => {
        setKeys(found);
        setError(null);
      },
      (caught: unknown) => {
        if (!controller.signal.aborted) setError(describeError(caught));
      },
    );
    return () => controller.abort();
  }, [all, version]);

  async function remove(key: ApiKey) {
    await api(`/api/api-keys/${key.id}`, { method: "DELETE" });
    notifications.show({ color: "green", title: "API key deleted", message: `"${key.name}" no longer works.` });
    reload();
  }

  const now = useNow(30_000);
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>API keys</Title>
        <Group>
          {admin && <Switch label="All users" checked={all} onChange={(event) => setAll(event.currentTarget.checked)} />}
          <KeyCreateButton onChanged={reload} />
        </Group>
      </Group>
      <Text size="sm" c="dimmed">
        A key authenticates a client on the OpenAI-compatible endpoint {window.location.origin}/v1 as you.
      </Text>
      <ErrorBox error={error} title="Cannot read the API keys" />
      {keys === null ? (
        !error && (
          <Center p="xl">
            <Loader />
          </Center>
        )
      ) : keys.length === 0 ? (
        <Paper withBorder p="lg">
          <Text>No API keys yet. Create one with "Create API key" to call the models from a program.</Text>
        </Paper>
      ) : (
        <Table.ScrollContainer minWidth={1100}>
          <Table striped highlightOnHover>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Key</Table.Th>
                {admin && <Table.Th>Owner</Table.Th>}
                <Table.Th>Models</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Requests/minute</Table.Th>
                <Table.Th>Tokens/day</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Actions</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {keys.map((key) => {
                const expired = key.expires_at !== null && Date.parse(key.expires_at) <= now;
                return (
                  <Table.Tr key={key.id}>
                    <Table.Td fw={500}>{key.name}</Table.Td>
                    <Table.Td ff="monospace">{key.prefix}…</Table.Td>
                    {admin && <Table.Td>{key.username}</Table.Td>}
                    <Table.Td>
                      {key.allowed_models ? (
                        <Group gap={4}>
                          {key.allowed_models.map((model) => (
                            <Badge key={model} variant="light" tt="none">
                              {model}
                            </Badge>
                          ))}
                        </Group>
                      ) : (
                        <Text size="sm" c="dimmed">
                          all models
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      {key.expires_at ? (
                        <Tooltip label={key.expires_at}>
                          <Group gap={4}>
                            <Text size="sm">{formatDate(key.expires_at)}</Text>
                            {expired && (
                              <Badge color="red" size="sm">
                                expired
                              </Badge>
                            )}
                          </Group>
                        </Tooltip>
                      ) : (
                        <Text size="sm" c="dimmed">
                          never
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>{key.requests_per_minute === null ? "unlimited" : formatCount(key.requests_per_minute)}</Table.Td>
                    <Table.Td>{key.tokens_per_day === null ? "unlimited" : formatCount(key.tokens_per_day)}</Table.Td>
                    <Table.Td>{formatDate(key.created_at)}</Table.Td>
                    <Table.Td>{formatAge(key.last_used_at, now)}</Table.Td>
                    <Table.Td>
                      <Group gap="xs" wrap="nowrap">
                        <KeyEditButton apiKey={key} onChanged={reload} />
                        <UserConfirmButton
                          label="Delete"
                          title={`Delete API key "${key.name}"?`}
                          message="Clients using it are refused from now on. This cannot be undone."
                          confirmLabel="Delete key"
                          onConfirm={() => remove(key)}
                        />
                      </Group>
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}
