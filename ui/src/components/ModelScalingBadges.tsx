// Beside a deployment's "1/2 running": its bounds ("0–3") and what its scaling does now ("on demand",
// "loading 1", "queued 4"). The model list and the model page show the same.

import { Badge, Text } from "@mantine/core";

import type { Model } from "../api/types";
import { replicaBoundsText, scalingBadges, type ScalingBadge } from "../lib/scalingText";

const COLORS: Record<ScalingBadge, string> = { "on demand": "teal", loading: "yellow", queued: "orange" };

/** ``loading``: the model's loading instances counted from the live instance list (the model object's
 * ``loading_replicas`` is as of its last change, before the instance it loads existed). */
export function ModelScalingBadges({ model, loading }: { model: Model; loading: number }) {
  const bounds = replicaBoundsText(model);
  return (
    <>
      {bounds && (
        <Text size="sm" c="dimmed" title={`between ${model.min_replicas} and ${model.max_replicas} replicas`}>
          {bounds}
        </Text>
      )}
      {scalingBadges({ ...model, loading_replicas: loading }).map(([kind, label]) => (
        <Badge key={kind} color={COLORS[kind]} variant="light" tt="none">
          {label}
        </Badge>
      ))}
    </>
  );
}
