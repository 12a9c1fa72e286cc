import { describe, expect, it } from "vitest";

import { formatAge, formatBytes, formatDuration, formatPercent, replicaSummary } from "./format";

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [512, "512 B"],
    [1536, "1.5 KiB"],
    [10 * 1024 * 1024, "10 MiB"],
    [1.25 * 1024 ** 3, "1.25 GiB"],
    [141 * 1024 ** 3, "141 GiB"],
    [80 * 1024 ** 4, "80 TiB"],
    [-2048, "-2 KiB"],
  ])("%d bytes → %s", (bytes, expected) => {
    expect(formatBytes(bytes)).toBe(expected);
  });

  it("shows a dash for what is unknown", () => {
    expect(formatBytes(null)).toBe("—");
    expect(formatBytes(undefined)).toBe("—");
  });
});

describe("durations and ages", () => {
  it.each([
    [4.4, "4 s"],
    [59, "59 s"],
    [61, "1 min"],
    [3600, "1 h"],
    [3660 + 240, "1 h 5 min"],
    [86400 * 2 + 3600 * 3, "2 d 3 h"],
  ])("%d s → %s", (seconds, expected) => {
    expect(formatDuration(seconds)).toBe(expected);
  });

  it("counts an age from now", () => {
    const now = Date.parse("2026-12-03T12:00:30Z");
    expect(formatAge("2026-12-03T12:00:00Z", now)).toBe("30 s ago");
    expect(formatAge(null, now)).toBe("never");
  });

  it("writes percentages and replica states", () => {
    expect(formatPercent(1, 4)).toBe("25%");
    expect(formatPercent(1, 0)).toBe("—");
    expect(replicaSummary(2, 3)).toBe("2/3 running");
  });
});
