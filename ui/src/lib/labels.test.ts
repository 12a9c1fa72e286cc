import { describe, expect, it } from "vitest";

import { editableRows, formatLabel, labelEntries, rowsToLabels } from "./labels";

const LABELS = { zone: "eu-west", os: "linux", arch: "amd64", "gpu-vendor": "nvidia", rack: "r1" };

describe("labels", () => {
  it("lists the automatic labels first, then the others by key", () => {
    expect(labelEntries(LABELS).map(([key, value]) => formatLabel(key, value))).toEqual([
      "arch=amd64",
      "gpu-vendor=nvidia",
      "os=linux",
      "rack=r1",
      "zone=eu-west",
    ]);
  });

  it("edits only the labels a person set", () => {
    expect(editableRows(LABELS)).toEqual([
      { key: "rack", value: "r1" },
      { key: "zone", value: "eu-west" },
    ]);
  });

  it.each([
    [[{ key: "zone", value: "eu-west" }], { zone: "eu-west" }],
    [[{ key: " zone ", value: " eu " }, { key: "", value: "" }], { zone: "eu" }],
    [[{ key: "team/ml", value: "" }], { "team/ml": "" }],
    [[], {}],
    [[{ key: "a", value: "1" }, { key: "a", value: "1" }], { a: "1" }],
  ])("rows %j → %j", (rows, labels) => {
    expect(rowsToLabels(rows)).toEqual({ labels, error: null });
  });

  it.each([
    [[{ key: "", value: "x" }], 'label key "" must be'],
    [[{ key: "-bad", value: "x" }], 'label key "-bad" must be'],
    [[{ key: "zone", value: "eu west" }], 'label value "eu west" for "zone"'],
    [[{ key: "os", value: "windows" }], 'label "os" is set automatically'],
    [[{ key: "a", value: "1" }, { key: "a", value: "2" }], 'label "a" is given twice'],
  ])("rows %j are refused", (rows, error) => {
    const result = rowsToLabels(rows);
    expect(result.labels).toBeNull();
    expect(result.error).toContain(error);
  });
});
