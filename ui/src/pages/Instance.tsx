// One instance (a running copy of a model): its state and why, download progress, where it was
// placed and what it claims, its engine's command line and its log, live from the watch stream.

import {
  Anchor,
  Button,
  Center,
  Code,
  CopyButton,
  Group,
  Loader,
  Paper,
  Progress,
  SimpleGrid,
  Stack,
  Text,
  Title,
} from "@mantine/core";
import { Link, useParams } from "react-router";

import type { Instance } from "../api/types";
import { InstanceLog } from "../components/InstanceLog";
import { InstanceStateWithMessage } from "../components/InstanceStateBadge";
import { ModelFactRow, ModelPlacementTable } from "../components/ModelPlacement";
import { ModelFact } from "../components/ModelSpecFacts";
import { formatAge } from "../lib/format";
import { commandLine } from "../lib/instanceLog";
import { useCluster } from "../state/cluster";

function WorkerLink({ id, name }: { id: number | null; name: string | null }) {
  if (id === null) return <Text size="sm" c="dimmed">not placed yet</Text>;
  return (
    <Anchor component={Link} to={`/workers/${id}`} size="sm">
      {name ?? `worker ${id}`}
    </Anchor>
  );
}

function Placement({ instance }: { instance: Instance }) {
  return (
    <Paper withBorder p="md">
      <Title order={4} mb="xs">
        Placement
      </Title>
      <ModelPlacementTable
        placement={{
          worker: <WorkerLink id={instance.worker_id} name={instance.worker_name} />,
          mode: instance.claim?.mode,
          device_ids: instance.device_ids,
          claim: instance.claim,
          subordinates: instance.subordinates.map((sub) => ({
            worker: <WorkerLink id={sub.worker_id} name={sub.worker_name} />,
            device_ids: sub.device_ids,
            claim: sub.claim,
            rpc: sub.rpc_host && sub.rpc_port ? `${sub.rpc_host}:${sub.rpc_port}` : null,
            pid: sub.rpc_pid,
            message: sub.message,
          })),
        }}
        extra={
          instance.ray_head ? (
            <ModelFactRow label="Ray head">{`${instance.ray_head} (vLLM across workers)`}</ModelFactRow>
          ) : undefined
        }
      />
    </Paper>
  );
}

function EngineCommand({ argv }: { argv: string[] | null }) {
  const line = commandLine(argv);
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Title order={3}>Engine command</Title>
        {line && (
          <CopyButton value={line}>
            {({ copied, copy }) => (
              <Button size="xs" variant="light" color={copied ? "teal" : "blue"} onClick={copy}>
                {copied ? "Copied" : "Copy"}
              </Button>
            )}
          </CopyButton>
        )}
      </Group>
      {line ? (
        <Code block style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}>
          {line}
        </Code>
      ) : (
        <Text size="sm" c="dimmed">
          not started yet
        </Text>
      )}
    </Stack>
  );
}

export function InstancePage() {
  const { id } = useParams();
  const { instances, synced } = useCluster();
  const instance = instances.find((candidate) => String(candidate.id) === id);

  if (!instance) {
    if (!synced) {
      return (
        <Center p="xl">
          <Loader />
        </Center>
      );
    }
    return (
      <Stack>
        <Title order={2}>Instance</Title>
        <Text>This instance no longer exists.</Text>
        <Anchor component={Link} to="/models">
          Back to the models
        </Anchor>
      </Stack>
    );
  }

  const progress = instance.download_progress ?? 0;
  return (
    <Stack>
      <Title order={2}>{instance.name}</Title>
      <Paper withBorder p="md">
        <SimpleGrid cols={{ base: 2, md: 4 }} spacing="lg">
          <ModelFact label="State">
            <InstanceStateWithMessage state={instance.state} message={instance.state_message} />
          </ModelFact>
          <ModelFact label="Model">
            {instance.model_id !== null ? (
              <Anchor component={Link} to={`/models/${instance.model_id}`} size="sm">
                {instance.model_name}
              </Anchor>
            ) : (
              `${instance.model_name} (deleted)`
            )}
          </ModelFact>
          <ModelFact label="Restarts">{String(instance.restart_count)}</ModelFact>
          <ModelFact label="Port / pid">{`${instance.port ?? "—"} / ${instance.pid ?? "—"}`}</ModelFact>
          <ModelFact label="Created">{formatAge(instance.created_at)}</ModelFact>
          <ModelFact label="Updated">{formatAge(instance.updated_at)}</ModelFact>
        </SimpleGrid>
        {instance.state === "downloading" && (
          <Stack gap={4} mt="md">
            <Text size="sm">{`Downloading: ${Math.round(progress)}%`}</Text>
            <Progress value={progress} animated aria-label="Download progress" />
          </Stack>
        )}
      </Paper>
      <Placement instance={instance} />
      <EngineCommand argv={instance.engine_command} />
      <InstanceLog
        instanceId={instance.id}
        engineKey={`${instance.worker_id ?? ""}:${instance.pid ?? ""}:${instance.restart_count}`}
      />
    </Stack>
  );
}
