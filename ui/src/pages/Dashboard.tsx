// The cluster at a glance: counts (workers, GPUs, models, instances by state), each GPU's memory as
// gpufleet allocated it beside its live use, and requests and tokens over time per model.

import { Button, Card, Center, Group, Loader, Text, Title } from "@mantine/core";
import { IconPlus } from "@tabler/icons-react";
import { useNavigate } from "react-router";

import { DashCounts } from "../components/DashCounts";
import { DashGpuBars } from "../components/DashGpuBars";
import { DashJoinCommand } from "../components/DashJoinCommand";
import { DashUsageOverTime } from "../components/DashUsageOverTime";
import { useCluster } from "../state/cluster";

function NoModels() {
  const navigate = useNavigate();
  return (
    <Card withBorder my="md">
      <Group justify="space-between">
        <Text>No model is deployed yet: deploy one and it is placed on this cluster&apos;s devices.</Text>
        <Button leftSection={<IconPlus size={16} />} onClick={() => navigate("/models?deploy=1")}>
          Deploy model
        </Button>
      </Group>
    </Card>
  );
}

export function DashboardPage() {
  const { workers, models, instances, devices, synced } = useCluster();
  if (!synced) {
    return (
      <Center h={200}>
        <Loader />
      </Center>
    );
  }
  return (
    <>
      <Title order={2} mb="md">
        Dashboard
      </Title>
      <DashJoinCommand workers={workers} />
      <DashCounts workers={workers} devices={devices} models={models} instances={instances} />
      {models.length === 0 && <NoModels />}
      <DashGpuBars devices={devices} workerCount={workers.length} />
      <DashUsageOverTime />
    </>
  );
}
