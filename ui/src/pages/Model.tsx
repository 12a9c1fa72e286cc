// One deployment: its spec, its replicas (running/desired, and updated/outdated while a change rolls
// out; its bounds and scaling badges), its instances live from the watch stream, what gpufleet did
// to it on its own (events); replicas (fixed ones only: bounded ones are gpufleet's to move), edit
// and delete.

import { Anchor, Badge, Center, Group, Loader, Paper, Stack, Text, Title } from "@mantine/core";
import { Link, useNavigate, useParams } from "react-router";

import { ModelDeleteButton, ModelEditButton, ModelReplicasEditor } from "../components/ModelActions";
import { ModelEvents } from "../components/ModelEvents";
import { ModelInstancesTable } from "../components/ModelInstancesTable";
import { ModelScalingBadges } from "../components/ModelScalingBadges";
import { ModelSpecFacts } from "../components/ModelSpecFacts";
import { replicaSummary } from "../lib/format";
import { replicaCounts } from "../lib/modelText";
import { replicaBoundsText } from "../lib/scalingText";
import { useCluster } from "../state/cluster";

export function ModelPage() {
  const { id } = useParams();
  const navigate = useNavigate();
  const { models, instances, synced } = useCluster();
  const model = models.find((candidate) => String(candidate.id) === id);

  if (!model) {
    if (!synced) {
      return (
        <Center p="xl">
          <Loader />
        </Center>
      );
    }
    return (
      <Stack>
        <Title order={2}>Model</Title>
        <Text>This model no longer exists.</Text>
        <Anchor component={Link} to="/models">
          Back to the models
        </Anchor>
      </Stack>
    );
  }

  const own = instances.filter((instance) => instance.model_id === model.id);
  const counts = replicaCounts(model, own);
  const rolling = counts.outdated > 0;
  const bounded = replicaBoundsText(model) !== null;

  return (
    <Stack>
      <Group justify="space-between">
        <Group>
          <Anchor component={Link} to="/models" size="sm">
            All models
          </Anchor>
          <Text c="dimmed">/</Text>
          <Title order={2}>{model.name}</Title>
        </Group>
        <Group>
          <ModelEditButton model={model} />
          <ModelDeleteButton model={model} onDeleted={() => navigate("/models")} />
        </Group>
      </Group>
      <Paper withBorder p="md">
        <Group justify="space-between" align="flex-end">
          <Stack gap={4}>
            <Group gap="xs">
              <Text size="xl" fw={600}>
                {replicaSummary(counts.ready, model.replicas)}
              </Text>
              {rolling && (
                <Badge color="violet" variant="light" tt="none">
                  rolling
                </Badge>
              )}
              <ModelScalingBadges model={model} loading={counts.loading} />
            </Group>
            {rolling ? (
              <Text size="sm" c="dimmed">
                {`Rolling out a change: ${counts.updated} updated, ${counts.outdated} outdated (replaced one at a time)`}
              </Text>
            ) : (
              <Text size="sm" c="dimmed">
                {`${counts.updated} instance(s) of the current spec`}
              </Text>
            )}
          </Stack>
          {bounded ? (
            <Text size="sm" c="dimmed" maw={320}>
              {`gpufleet moves the target between ${model.min_replicas} and ${model.max_replicas}; ` +
                "Edit changes the bounds."}
            </Text>
          ) : (
            <ModelReplicasEditor model={model} />
          )}
        </Group>
      </Paper>
      <ModelSpecFacts model={model} />
      <Title order={3}>Instances</Title>
      <ModelInstancesTable instances={own} model={model} />
      <Title order={3}>Events</Title>
      <ModelEvents model={model} />
    </Stack>
  );
}
