import { describe, expect, it } from "vitest";

import {
  previewReplicas,
  SCALING_DEFAULTS,
  scalingPatch,
  scalingProblem,
  scalingRequest,
  scalingToForm,
  type ScalingForm,
} from "./scaling";

const ON_DEMAND: ScalingForm = { ...SCALING_DEFAULTS, scaling: "autoscale", minReplicas: 0, maxReplicas: 3 };

describe("scalingRequest (a create)", () => {
  it.each<[string, Partial<ScalingForm>, object]>([
    ["fixed, defaults: the replicas only", {}, { replicas: 1 }],
    ["fixed ignores the hidden bounds and idle timeout", { replicas: 2, minReplicas: 5, idleTimeout: 60 }, { replicas: 2 }],
    // no replicas: the server starts at min_replicas (0: nothing loaded until a request comes)
    ["on demand, never unloaded", ON_DEMAND, { min_replicas: 0, max_replicas: 3 }],
    ["on demand, unloaded after 300 s", { ...ON_DEMAND, idleTimeout: 300 }, {
      min_replicas: 0,
      max_replicas: 3,
      idle_timeout: 300,
    }],
    // max_queue 0 differs from the default 100: sent; priority 0 and queue timeout 120 are defaults
    ["queueing off the defaults", { maxQueue: 0, maxConcurrentRequests: 4 }, {
      replicas: 1,
      max_queue: 0,
      max_concurrent_requests: 4,
    }],
    ["priority", { priority: -5 }, { replicas: 1, priority: -5 }],
  ])("%s", (_, change, expected) => {
    expect(scalingRequest({ ...SCALING_DEFAULTS, ...change })).toEqual(expected);
  });
});

describe("scalingProblem", () => {
  it.each<[string, Partial<ScalingForm>, string | null]>([
    ["fixed", { minReplicas: 4, maxReplicas: 1 }, null], // bounds hidden: not checked
    ["min = max", { ...ON_DEMAND, minReplicas: 2, maxReplicas: 2 }, null],
    ["min > max", { ...ON_DEMAND, minReplicas: 3, maxReplicas: 2 }, "Min replicas (3) must not be above max replicas (2)."],
  ])("%s", (_, change, expected) => {
    expect(scalingProblem({ ...SCALING_DEFAULTS, ...change })).toBe(expected);
  });
});

describe("previewReplicas", () => {
  it.each<[string, Partial<ScalingForm>, number]>([
    ["fixed 2", { replicas: 2 }, 2],
    ["on demand 0–3: a first load places min(max(0, 1), 3) = 1", ON_DEMAND, 1],
    ["autoscale 2–3: min(max(2, 1), 3) = 2", { ...ON_DEMAND, minReplicas: 2 }, 2],
    ["0–0: min(max(0, 1), 0) = 0", { ...ON_DEMAND, maxReplicas: 0 }, 0],
  ])("%s", (_, change, expected) => {
    expect(previewReplicas({ ...SCALING_DEFAULTS, ...change })).toBe(expected);
  });
});

describe("scalingToForm and scalingPatch", () => {
  const fixed = {
    replicas: 2,
    min_replicas: null,
    max_replicas: null,
    idle_timeout: null,
    priority: 0,
    max_concurrent_requests: null,
    max_queue: 100,
    queue_timeout: 120,
  };

  it("offers bounds 0–replicas to a fixed model", () => {
    expect(scalingToForm(fixed)).toEqual({ ...SCALING_DEFAULTS, replicas: 2, maxReplicas: 2 });
  });

  it.each<[string, Partial<ScalingForm>, object]>([
    ["unchanged", {}, {}],
    ["to on demand", { scaling: "autoscale", idleTimeout: 600 }, { min_replicas: 0, max_replicas: 2, idle_timeout: 600 }],
    ["concurrency cleared", { maxConcurrentRequests: "" }, {}],
  ])("%s", (_, change, expected) => {
    expect(scalingPatch(fixed, { ...scalingToForm(fixed), ...change })).toEqual(expected);
  });

  it("clears the concurrency limit with null", () => {
    const limited = { ...fixed, max_concurrent_requests: 8 };
    expect(scalingPatch(limited, { ...scalingToForm(limited), maxConcurrentRequests: "" })).toEqual({
      max_concurrent_requests: null,
    });
  });
});
