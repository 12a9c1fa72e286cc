// The deploy form's "Scaling" section: fixed replicas, or on demand / autoscale between min and max
// with an idle timeout, then the gateway's limits every deployment has (priority, concurrency,
// queue). Values and rules are lib/scaling.ts's; min > max is said here, before the server is asked.

import { Fieldset, Group, NumberInput, Radio, SimpleGrid, Stack } from "@mantine/core";

import { scalingProblem, type ScalingForm } from "../lib/scaling";

const count = (value: number | string): number => (typeof value === "number" ? value : Number(value) || 0);
const optional = (value: number | string): number | "" => (typeof value === "number" ? value : "");

export function ModelScalingFields({ form, set }: { form: ScalingForm; set: (change: Partial<ScalingForm>) => void }) {
  const problem = scalingProblem(form);
  return (
    <Fieldset legend="Scaling">
      <Stack gap="sm">
        <Radio.Group
          value={form.scaling}
          onChange={(value) => set({ scaling: value === "autoscale" ? "autoscale" : "fixed" })}
        >
          <Group>
            <Radio value="fixed" label="Fixed replicas" />
            <Radio value="autoscale" label="On demand / autoscale" />
          </Group>
        </Radio.Group>
        {form.scaling === "fixed" ? (
          <NumberInput
            label="Replicas"
            min={0}
            max={1000}
            allowDecimal={false}
            w={200}
            value={form.replicas}
            onChange={(value) => set({ replicas: count(value) })}
          />
        ) : (
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <NumberInput
              label="Min replicas"
              description="0: on demand, loaded on the first request"
              min={0}
              max={1000}
              allowDecimal={false}
              value={form.minReplicas}
              onChange={(value) => set({ minReplicas: count(value) })}
            />
            <NumberInput
              label="Max replicas"
              description="gpufleet adds replicas up to this under load"
              min={0}
              max={1000}
              allowDecimal={false}
              value={form.maxReplicas}
              error={problem}
              onChange={(value) => set({ maxReplicas: count(value) })}
            />
            <NumberInput
              label="Idle timeout (s)"
              description="Unload an instance idle this long; empty: never"
              min={1}
              allowDecimal={false}
              value={form.idleTimeout}
              onChange={(value) => set({ idleTimeout: optional(value) })}
            />
          </SimpleGrid>
        )}
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <NumberInput
            label="Priority"
            description="-1000 to 1000; higher evicts lower when memory is short"
            min={-1000}
            max={1000}
            allowDecimal={false}
            value={form.priority}
            onChange={(value) => set({ priority: count(value) })}
          />
          <NumberInput
            label="Max concurrent requests"
            description="Per instance; empty: the engine's slots"
            min={1}
            allowDecimal={false}
            value={form.maxConcurrentRequests}
            onChange={(value) => set({ maxConcurrentRequests: optional(value) })}
          />
          <NumberInput
            label="Max queue"
            description="Requests that may wait for a slot"
            min={0}
            allowDecimal={false}
            value={form.maxQueue}
            onChange={(value) => set({ maxQueue: count(value) })}
          />
          <NumberInput
            label="Queue timeout (s)"
            description="The longest a request waits"
            min={1}
            allowDecimal={false}
            value={form.queueTimeout}
            onChange={(value) => set({ queueTimeout: count(value) })}
          />
        </SimpleGrid>
      </Stack>
    </Fieldset>
  );
}
