// The deployments: one row per model with its replicas (running/desired, with the bounds and badges
// of its scaling), its instances' states, its source and backend, its last request, live from the
// watch stream (replica counts from the live instances, as the server counts them). "Deploy model"
// (or /models?deploy=1) opens the form.

import { Anchor, Badge, Button, Center, Group, Loader, Paper, Stack, Table, Text, Title } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { Link, useNavigate, useSearchParams } from "react-router";

import { api } from "../api/client";
import type { Instance, Model } from "../api/types";
import { InstanceStateBadge } from "../components/InstanceStateBadge";
import { ModelFormModal } from "../components/ModelFormModal";
import { ModelScalingBadges } from "../components/ModelScalingBadges";
import { showPlacementWarnings } from "../components/placementWarnings";
import { deployRequest, EMPTY_FORM, type DeployForm } from "../lib/deployRequest";
import { formatAge, replicaSummary } from "../lib/format";
import { backendText, replicaCounts, sourceText, stateCounts } from "../lib/modelText";
import { useCluster } from "../state/cluster";

function DeployButton({ onClick }: { onClick: () => void }) {
  return <Button onClick={onClick}>Deploy model</Button>;
}

function ModelRow({ model, instances }: { model: Model; instances: Instance[] }) {
  const counts = stateCounts(instances);
  const replicas = replicaCounts(model, instances);
  return (
    <Table.Tr>
      <Table.Td>
        <Anchor component={Link} to={`/models/${model.id}`} fw={500}>
          {model.name}
        </Anchor>
      </Table.Td>
      <Table.Td>
        <Group gap={6} wrap="nowrap">
          <Text size="sm">{replicaSummary(replicas.ready, model.replicas)}</Text>
          {replicas.outdated > 0 && (
            <Badge
              color="violet"
              variant="light"
              tt="none"
              title={`${replicas.updated} updated, ${replicas.outdated} outdated`}
            >
              rolling
            </Badge>
          )}
          <ModelScalingBadges model={model} loading={replicas.loading} />
        </Group>
      </Table.Td>
      <Table.Td>
        {counts.length === 0 ? (
          <Text size="sm" c="dimmed">
            none
          </Text>
        ) : (
          <Group gap={4}>
            {counts.map(([state, count]) => (
              <InstanceStateBadge key={state} state={state} count={count} />
            ))}
          </Group>
        )}
      </Table.Td>
      <Table.Td>
        <Text size="sm" style={{ wordBreak: "break-all" }}>
          {sourceText(model)}
        </Text>
      </Table.Td>
      <Table.Td>
        <Text size="sm">{backendText(model.backend)}</Text>
      </Table.Td>
      <Table.Td>
        <Text size="sm" title={model.last_request_at ?? undefined}>
          {formatAge(model.last_request_at)}
        </Text>
      </Table.Td>
    </Table.Tr>
  );
}

export function ModelsPage() {
  const { models, instances, synced } = useCluster();
  const navigate = useNavigate();
  const [searchParams, setSearchParams] = useSearchParams();
  const deploying = searchParams.get("deploy") === "1";

  const setDeploying = (open: boolean) =>
    setSearchParams(
      (params) => {
        const next = new URLSearchParams(params);
        if (open) next.set("deploy", "1");
        else next.delete("deploy");
        return next;
      },
      { replace: !open },
    );

  const deploy = async (form: DeployForm) => {
    const model = await api<Model>("/api/models", { body: deployRequest(form) });
    notifications.show({ color: "green", title: "Model deployed", message: `${model.name}: placing its replicas` });
    showPlacementWarnings(model);
    navigate(`/models/${model.id}`);
  };

  const empty = synced && models.length === 0;

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Models</Title>
        {!empty && <DeployButton onClick={() => setDeploying(true)} />}
      </Group>
      {!synced ? (
        <Center p="xl">
          <Loader />
        </Center>
      ) : empty ? (
        <Paper withBorder p="xl">
          <Stack align="center" gap="sm">
            <Text fw={500}>No models yet</Text>
            <Text size="sm" c="dimmed">
              Deploy one from Hugging Face, ModelScope, the Ollama library or a file on a worker.
            </Text>
            <DeployButton onClick={() => setDeploying(true)} />
          </Stack>
        </Paper>
      ) : (
        <Table striped highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Replicas</Table.Th>
              <Table.Th>Instances</Table.Th>
              <Table.Th>Source</Table.Th>
              <Table.Th>Backend</Table.Th>
              <Table.Th>Last request</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {models.map((model) => (
              <ModelRow
                key={model.id}
                model={model}
                instances={instances.filter((instance) => instance.model_id === model.id)}
              />
            ))}
          </Table.Tbody>
        </Table>
      )}
      <ModelFormModal
        opened={deploying}
        onClose={() => setDeploying(false)}
        title="Deploy model"
        initial={EMPTY_FORM}
        submitLabel="Deploy"
        onSubmit={deploy}
      />
    </Stack>
  );
}
