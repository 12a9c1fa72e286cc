// Playground: talk to a running model through the gateway (/v1), as any client would (the session
// cookie authenticates; the traffic counts in usage). Chat streams; Embeddings compares two texts.

import { ActionIcon, Alert, Anchor, Group, Select, Stack, Tabs, Title, Tooltip } from "@mantine/core";
import { IconRefresh } from "@tabler/icons-react";
import { useEffect, useState } from "react";
import { Link } from "react-router";

import { api, describeError } from "../api/client";
import { ErrorBox } from "../components/ErrorBox";
import { PlaygroundChat } from "../components/PlaygroundChat";
import { PlaygroundEmbeddings } from "../components/PlaygroundEmbeddings";
import { useAuth } from "../state/auth";

interface ModelList {
  data: { id: string }[];
}

export function PlaygroundPage() {
  const { me } = useAuth();
  const [models, setModels] = useState<string[] | null>(null);
  const [model, setModel] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0); // bumped by the refresh button
  const [fetched, setFetched] = useState(-1); // the version of the last answer
  const loading = fetched !== version;

  useEffect(() => {
    const controller = new AbortController();
    api<ModelList>("/v1/models", { signal: controller.signal }).then(
      (list) => {
        const ids = list.data.map((entry) => entry.id).sort();
        setModels(ids);
        setModel((current) => (current && ids.includes(current) ? current : (ids[0] ?? null)));
        setError(null);
        setFetched(version);
      },
      (caught: unknown) => {
        if (controller.signal.aborted) return;
        setError(describeError(caught));
        setFetched(version);
      },
    );
    return () => controller.abort();
  }, [version]);

  return (
    <Stack>
      <Title order={2}>Playground</Title>
      <Group align="flex-end">
        <Select
          label="Model"
          placeholder={models?.length ? "Choose a running model" : "no model is running"}
          data={models ?? []}
          value={model}
          onChange={setModel}
          allowDeselect={false}
          searchable
          nothingFoundMessage="No such running model"
          w={320}
        />
        <Tooltip label="Read the running models again">
          <ActionIcon variant="default" size="lg" aria-label="Refresh models" loading={loading} onClick={() => setVersion((v) => v + 1)}>
            <IconRefresh size={18} />
          </ActionIcon>
        </Tooltip>
      </Group>
      <ErrorBox error={error} title="Cannot list the running models" />
      {models !== null && models.length === 0 && (
        <Alert color="blue" title="No model is running yet">
          The playground talks to deployments with a running instance.{" "}
          {me.role === "admin" ? (
            <Anchor component={Link} to="/models?deploy=1">
              Deploy model
            </Anchor>
          ) : (
            "Ask an admin to deploy one."
          )}
        </Alert>
      )}
      <Tabs defaultValue="chat" keepMountedMode="display-none">
        <Tabs.List>
          <Tabs.Tab value="chat">Chat</Tabs.Tab>
          <Tabs.Tab value="embeddings">Embeddings</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="chat" pt="md">
          <PlaygroundChat model={model} />
        </Tabs.Panel>
        <Tabs.Panel value="embeddings" pt="md">
          <PlaygroundEmbeddings model={model} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
