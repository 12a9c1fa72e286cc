import { describe, expect, it } from "vitest";

import {
  concurrencyText,
  eventKindText,
  idleTimeoutText,
  queueText,
  replicaBoundsText,
  scalingBadges,
  scalingText,
} from "./scalingText";

const FIXED = { min_replicas: null, max_replicas: null, loading_replicas: 0, queued_requests: 0 };
const ON_DEMAND = { ...FIXED, min_replicas: 0, max_replicas: 3 };

describe("bounds and badges", () => {
  it.each([
    ["fixed", FIXED, null, "fixed", []],
    ["on demand", ON_DEMAND, "0–3", "on demand, 0–3 replicas", [["on demand", "on demand"]]],
    [
      "autoscale 1–3, loading and queued",
      { ...ON_DEMAND, min_replicas: 1, loading_replicas: 1, queued_requests: 4 },
      "1–3",
      "autoscale, 1–3 replicas",
      [["loading", "loading 1"], ["queued", "queued 4"]],
    ],
    ["fixed with requests waiting", { ...FIXED, queued_requests: 2 }, null, "fixed", [["queued", "queued 2"]]],
  ])("%s", (_, model, bounds, text, badges) => {
    expect(replicaBoundsText(model)).toBe(bounds);
    expect(scalingText(model)).toBe(text);
    expect(scalingBadges(model)).toEqual(badges);
  });
});

describe("facts", () => {
  it.each([
    [idleTimeoutText(null), "never"],
    [idleTimeoutText(300), "after 5 min idle"], // 300 s = 5 min
    [concurrencyText(null), "engine default"],
    [concurrencyText(8), "8 per instance"],
    [queueText({ max_queue: 100, queue_timeout: 120 }), "100 requests, 2 min each at most"], // 120 s = 2 min
    [queueText({ max_queue: 0, queue_timeout: 120 }), "off"],
    [eventKindText("scale_down"), "scale down"],
    [eventKindText("evicted"), "evicted"],
  ])("%s", (text, expected) => {
    expect(text).toBe(expected);
  });
});
