// The deploy form's "Scaling" section: fixed replicas, or on demand / autoscale between two bounds,
// plus the gateway's per-model limits (priority, concurrency, queue). Its values become the spec's
// fields with every null spelled out, so a create drops the nulls and the server's defaults, and an
// edit sends what changed, nulls included (a cleared field is cleared on the server).
//
// Invariants, as the server checks them (gpufleet/schemas/models.py):
// - fixed: min_replicas and max_replicas are both null and `replicas` is the person's number;
// - autoscale: both bounds are set, 0 ≤ min ≤ max, and `replicas` is left out: the server starts
//   at min_replicas and moves it between the bounds (min_replicas 0 = "on demand");
// - idle_timeout only means something with bounds: fixed sends null (never unloaded).

import type { Model, ModelSpec } from "../api/types";

export type ScalingMode = "fixed" | "autoscale";

export interface ScalingForm {
  scaling: ScalingMode;
  replicas: number; // fixed only
  minReplicas: number; // autoscale only
  maxReplicas: number; // autoscale only
  idleTimeout: number | ""; // seconds, autoscale only; empty: never unload
  priority: number;
  maxConcurrentRequests: number | ""; // empty: the engine's parallel slots
  maxQueue: number;
  queueTimeout: number; // seconds
}

/** The server's defaults (ModelSpec), and bounds of 0–1 ready for "On demand". */
export const SCALING_DEFAULTS: ScalingForm = {
  scaling: "fixed",
  replicas: 1,
  minReplicas: 0,
  maxReplicas: 1,
  idleTimeout: "",
  priority: 0,
  maxConcurrentRequests: "",
  maxQueue: 100,
  queueTimeout: 120,
};

export const SCALING_KEYS = [
  "replicas",
  "min_replicas",
  "max_replicas",
  "idle_timeout",
  "priority",
  "max_concurrent_requests",
  "max_queue",
  "queue_timeout",
] as const;

export type ScalingKey = (typeof SCALING_KEYS)[number];

/** Every scaling field of the spec, null where unset; `replicas` undefined under autoscale. */
export type ScalingSpec = {
  [K in ScalingKey]: K extends "replicas" ? number | undefined : NonNullable<ModelSpec[K]> | null;
};

const orNull = (value: number | ""): number | null => (value === "" ? null : value);

export function scalingSpec(form: ScalingForm): ScalingSpec {
  const autoscale = form.scaling === "autoscale";
  return {
    replicas: autoscale ? undefined : form.replicas,
    min_replicas: autoscale ? form.minReplicas : null,
    max_replicas: autoscale ? form.maxReplicas : null,
    idle_timeout: autoscale ? orNull(form.idleTimeout) : null,
    priority: form.priority,
    max_concurrent_requests: orNull(form.maxConcurrentRequests),
    max_queue: form.maxQueue,
    queue_timeout: form.queueTimeout,
  };
}

const SERVER_DEFAULTS: Partial<ScalingSpec> = {
  priority: SCALING_DEFAULTS.priority,
  max_queue: SCALING_DEFAULTS.maxQueue,
  queue_timeout: SCALING_DEFAULTS.queueTimeout,
};

/** The scaling fields of a create: only those set and not at the server's default. */
export function scalingRequest(form: ScalingForm): Partial<ScalingSpec> {
  const body: Partial<ScalingSpec> = {};
  for (const [key, value] of Object.entries(scalingSpec(form)) as [ScalingKey, number | null | undefined][]) {
    if (value !== null && value !== undefined && value !== SERVER_DEFAULTS[key]) Object.assign(body, { [key]: value });
  }
  return body;
}

/** What is wrong with the section before asking the server, or null. */
export function scalingProblem(form: ScalingForm): string | null {
  if (form.scaling === "autoscale" && form.minReplicas > form.maxReplicas) {
    return `Min replicas (${form.minReplicas}) must not be above max replicas (${form.maxReplicas}).`;
  }
  return null;
}

/**
 * The replicas a placement preview asks for: the fixed number, or under autoscale the first one a
 * request would load (min, at least 1, never above max), so an on-demand model previews one replica.
 */
export function previewReplicas(form: ScalingForm): number {
  if (form.scaling === "fixed") return form.replicas;
  return Math.min(Math.max(form.minReplicas, 1), form.maxReplicas);
}

type ScalingFields = Pick<Model, ScalingKey>;

/** A deployment's scaling back into the form; a fixed one gets bounds 0–replicas to switch to. */
export function scalingToForm(model: ScalingFields): ScalingForm {
  const bounded = model.min_replicas !== null && model.max_replicas !== null;
  return {
    scaling: bounded ? "autoscale" : "fixed",
    replicas: model.replicas,
    minReplicas: model.min_replicas ?? 0,
    maxReplicas: model.max_replicas ?? Math.max(model.replicas, 1),
    idleTimeout: model.idle_timeout ?? "",
    priority: model.priority,
    maxConcurrentRequests: model.max_concurrent_requests ?? "",
    maxQueue: model.max_queue,
    queueTimeout: model.queue_timeout,
  };
}

/**
 * The scaling fields of a PATCH: those that differ from the model, nulls included. The bounds go
 * together (both when either changes), as the server wants them; `replicas` is never sent under
 * autoscale (the server moves it into the new bounds).
 */
export function scalingPatch(model: ScalingFields, form: ScalingForm): Partial<ScalingSpec> {
  const wanted = scalingSpec(form);
  const patch: Partial<ScalingSpec> = {};
  for (const key of SCALING_KEYS) {
    const value = wanted[key];
    if (value !== undefined && value !== (model[key] ?? null)) Object.assign(patch, { [key]: value });
  }
  if ("min_replicas" in patch || "max_replicas" in patch) {
    patch.min_replicas = wanted.min_replicas;
    patch.max_replicas = wanted.max_replicas;
  }
  return patch;
}
