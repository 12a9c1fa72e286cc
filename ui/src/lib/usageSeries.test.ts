import { describe, expect, it } from "vitest";

import type { UsagePoint, UsageSeries } from "../api/types";
import { bucketLabel, isDay, lastDays, seriesPath, seriesQuery, shiftDay, usageChart, utcDay } from "./usageSeries";

const NOW = Date.parse("2026-12-03T14:25:00Z");

describe("days", () => {
  it.each([
    ["2026-12-03", 0, "2026-12-03"],
    ["2026-12-03", -1, "2026-12-02"],
    ["2026-03-01", -1, "2026-02-28"],
    ["2026-12-31", 1, "2027-01-01"],
    ["2026-12-03", -29, "2026-11-04"],
  ])("%s %+d → %s", (day, days, expected) => {
    expect(shiftDay(day, days)).toBe(expected);
  });

  it("reads the UTC day and checks a day's shape", () => {
    expect(utcDay(Date.parse("2026-12-03T23:59:59-05:00"))).toBe("2026-12-04");
    expect(lastDays(30, NOW)).toEqual({ from: "2026-11-04", to: "2026-12-03" });
    expect(isDay("2026-12-03")).toBe(true);
    expect(isDay("")).toBe(false);
    expect(isDay("2026-13-45")).toBe(false);
  });
});

describe("seriesQuery", () => {
  const custom = { from: "2026-10-01", to: "2026-10-31" };
  it.each([
    ["24h", { step: "hour", from: "2026-12-02", to: "2026-12-03", keep: 24 }],
    ["7d", { step: "day", from: "2026-11-27", to: "2026-12-03", keep: null }],
    ["30d", { step: "day", from: "2026-11-04", to: "2026-12-03", keep: null }],
    ["custom", { step: "day", from: "2026-10-01", to: "2026-10-31", keep: null }],
  ] as const)("%s", (preset, expected) => {
    expect(seriesQuery(preset, NOW, custom)).toEqual(expected);
  });

  it("waits for both custom days", () => {
    expect(seriesQuery("custom", NOW, { from: "", to: "2026-10-31" })).toBeNull();
  });

  it("builds the request", () => {
    expect(seriesPath({ step: "hour", from: "2026-12-02", to: "2026-12-03", keep: 24 })).toBe(
      "/api/usage/series?step=hour&from=2026-12-02&to=2026-12-03",
    );
  });

  it.each([
    ["2026-12-03T00:00:00Z", "day", "Dec 3"],
    ["2026-01-09T07:00:00Z", "hour", "Jan 9 07:00"],
  ] as const)("labels %s per %s", (iso, step, label) => {
    expect(bucketLabel(Date.parse(iso), step)).toBe(label);
  });
});

const point = (time: string, model_name: string, requests: number, tokens: number): UsagePoint => ({
  time,
  model_name,
  requests,
  prompt_tokens: tokens - 1,
  completion_tokens: 1,
  total_tokens: tokens,
});

describe("usageChart", () => {
  const days: UsageSeries = {
    step: "day",
    buckets: ["2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"],
    points: [
      point("2026-12-01T00:00:00Z", "tiny", 2, 30),
      point("2026-12-03T00:00:00Z", "qwen2.5", 1, 100),
      point("2026-12-03T00:00:00Z", "tiny", 1, 10),
    ],
  };

  it("zero-fills every bucket with a column per model", () => {
    const chart = usageChart(days);
    expect(chart.models.map((m) => [m.key, m.model])).toEqual([
      ["m0", "qwen2.5"],
      ["m1", "tiny"],
    ]);
    expect(chart.requests).toEqual([
      { time: "2026-12-01T00:00:00.000Z", label: "Dec 1", m0: 0, m1: 2 },
      { time: "2026-12-02T00:00:00.000Z", label: "Dec 2", m0: 0, m1: 0 },
      { time: "2026-12-03T00:00:00.000Z", label: "Dec 3", m0: 1, m1: 1 },
    ]);
    expect(chart.tokens.map((row) => [row.m0, row.m1])).toEqual([
      [0, 30],
      [0, 0],
      [100, 10],
    ]);
    expect(chart.totals).toEqual([
      { model_name: "qwen2.5", requests: 1, prompt_tokens: 99, completion_tokens: 1, total_tokens: 100 },
      { model_name: "tiny", requests: 3, prompt_tokens: 38, completion_tokens: 2, total_tokens: 40 },
    ]);
    expect(chart.empty).toBe(false);
  });

  it("reads timestamps whatever their spelling of UTC", () => {
    const chart = usageChart({ ...days, points: [point("2026-12-02T00:00:00+00:00", "tiny", 4, 8)] });
    expect(chart.requests.map((row) => row.m0)).toEqual([0, 4, 0]);
  });

  it("keeps the last 24 hours that started, and only their points", () => {
    const buckets = Array.from({ length: 48 }, (_, h) => new Date(Date.parse("2026-12-02T00:00:00Z") + h * 3600_000).toISOString());
    const series: UsageSeries = {
      step: "hour",
      buckets,
      points: [
        point("2026-12-02T14:00:00Z", "old", 5, 50), // 25 hours ago: dropped
        point("2026-12-02T15:00:00Z", "tiny", 1, 7),
        point("2026-12-03T14:00:00Z", "tiny", 2, 9),
      ],
    };
    const chart = usageChart(series, 24, NOW);
    expect(chart.requests).toHaveLength(24);
    expect(chart.requests[0]?.label).toBe("Dec 2 15:00");
    expect(chart.requests[23]?.label).toBe("Dec 3 14:00");
    expect(chart.models.map((m) => m.model)).toEqual(["tiny"]);
    expect(chart.requests[0]?.m0).toBe(1);
    expect(chart.requests[23]?.m0).toBe(2);
    expect(chart.totals).toEqual([
      { model_name: "tiny", requests: 3, prompt_tokens: 14, completion_tokens: 2, total_tokens: 16 },
    ]);
  });

  it("says when a range had no requests", () => {
    const chart = usageChart({ ...days, points: [] });
    expect(chart.empty).toBe(true);
    expect(chart.models).toEqual([]);
    expect(chart.requests).toEqual([
      { time: "2026-12-01T00:00:00.000Z", label: "Dec 1" },
      { time: "2026-12-02T00:00:00.000Z", label: "Dec 2" },
      { time: "2026-12-03T00:00:00.000Z", label: "Dec 3" },
    ]);
  });
});
