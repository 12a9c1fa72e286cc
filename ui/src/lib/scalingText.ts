// How a deployment's scaling reads on the model pages: its bounds ("0–3"), the badges beside its
// replicas ("on demand", "loading 1", "queued 4") and the facts of its detail view. Text only: the
// components choose the colours.

import type { Model, ModelEventKind } from "../api/types";
import { formatDuration } from "./format";

type Bounds = Pick<Model, "min_replicas" | "max_replicas">;

/** "0–3" for a deployment with bounds, null for a fixed one. */
export function replicaBoundsText(model: Bounds): string | null {
  if (model.min_replicas === null || model.max_replicas === null) return null;
  return `${model.min_replicas}–${model.max_replicas}`;
}

export type ScalingBadge = "on demand" | "loading" | "queued";

/** The badges beside the replicas, in this order: [["on demand", "on demand"], ["loading", "loading 1"]]. */
export function scalingBadges(
  model: Bounds & Pick<Model, "loading_replicas" | "queued_requests">,
): [ScalingBadge, string][] {
  const badges: [ScalingBadge, string][] = [];
  if (model.min_replicas === 0 && model.max_replicas !== null) badges.push(["on demand", "on demand"]);
  if (model.loading_replicas > 0) badges.push(["loading", `loading ${model.loading_replicas}`]);
  if (model.queued_requests > 0) badges.push(["queued", `queued ${model.queued_requests}`]);
  return badges;
}

/** "fixed", "on demand, 0–3 replicas" or "autoscale, 1–3 replicas". */
export function scalingText(model: Bounds): string {
  const bounds = replicaBoundsText(model);
  if (bounds === null) return "fixed";
  return `${model.min_replicas === 0 ? "on demand" : "autoscale"}, ${bounds} replicas`;
}

/** "never" or "after 5 min" idle. */
export function idleTimeoutText(seconds: number | null): string {
  return seconds === null ? "never" : `after ${formatDuration(seconds)} idle`;
}

/** "8 per instance" or "engine default". */
export function concurrencyText(limit: number | null): string {
  return limit === null ? "engine default" : `${limit} per instance`;
}

/** "100 requests, 2 min each at most"; "off" when nothing may wait. */
export function queueText(model: Pick<Model, "max_queue" | "queue_timeout">): string {
  if (model.max_queue === 0) return "off";
  return `${model.max_queue} requests, ${formatDuration(model.queue_timeout)} each at most`;
}

/** "scale_up" → "scale up". */
export function eventKindText(kind: ModelEventKind): string {
  return kind.replace("_", " ");
}
