// Every device of the cluster (GPUs, and each worker's CPU with its host RAM): what gpufleet has
// allocated on it, what is used live, its utilization and temperature, and which instances hold it.

import { Center, Group, Loader, Text, TextInput, Title } from "@mantine/core";
import { IconSearch } from "@tabler/icons-react";
import { useMemo, useState } from "react";

import { DashDeviceTable } from "../components/DashDeviceTable";
import { isGpu, sortDevices } from "../components/DashDevices";
import { DashJoinCommand } from "../components/DashJoinCommand";
import { DashMemoryLegend } from "../components/DashMemoryBar";
import { formatBytes } from "../lib/format";
import { useCluster } from "../state/cluster";

export function GpusPage() {
  const { workers, devices, synced } = useCluster();
  const [filter, setFilter] = useState("");
  const shown = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    const matching = needle
      ? devices.filter((d) =>
          [d.worker_name, d.id, d.name, d.vendor].some((field) => field.toLowerCase().includes(needle)),
        )
      : devices;
    return sortDevices(matching);
  }, [devices, filter]);

  if (!synced) {
    return (
      <Center h={200}>
        <Loader />
      </Center>
    );
  }
  const gpus = devices.filter(isGpu);
  const allocated = gpus.reduce((sum, d) => sum + d.allocated, 0);
  const total = gpus.reduce((sum, d) => sum + d.memory_total, 0);
  return (
    <>
      <Title order={2}>GPUs</Title>
      <Text c="dimmed" size="sm" mb="md">
        {workers.length === 0
          ? "No worker yet: a machine that joins brings its devices."
          : gpus.length
          ? `${gpus.length} GPU${gpus.length === 1 ? "" : "s"} on ${workers.length} worker${workers.length === 1 ? "" : "s"}: ${formatBytes(allocated)} of ${formatBytes(total)} allocated by gpufleet.`
          : "No GPU in this cluster: models run on the workers' CPUs (their host RAM, listed below)."}
      </Text>
      <DashJoinCommand workers={workers} />
      {workers.length > 0 && devices.length === 0 && <Loader size="sm" />}
      {devices.length > 0 && (
        <>
          <Group justify="space-between" align="flex-end" mb="sm">
            <TextInput
              label="Filter"
              placeholder="worker, device or vendor"
              leftSection={<IconSearch size={16} />}
              value={filter}
              onChange={(e) => setFilter(e.currentTarget.value)}
              w={280}
            />
            <DashMemoryLegend />
          </Group>
          {shown.length === 0 ? (
            <Text c="dimmed">No device matches “{filter}”.</Text>
          ) : (
            <DashDeviceTable devices={shown} />
          )}
        </>
      )}
    </>
  );
}
