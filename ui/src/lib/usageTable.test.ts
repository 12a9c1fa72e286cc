import { describe, expect, it } from "vitest";

import type { UsageRow } from "../api/types";
import { toCsv } from "./csv";
import { groupColumns, groupLabel, groupNames, usageFilename, usagePath, usageTable } from "./usageTable";

const base: UsageRow = {
  model_name: null,
  user_id: null,
  username: null,
  api_key_id: null,
  api_key_name: null,
  day: null,
  requests: 1,
  prompt_tokens: 2,
  completion_tokens: 3,
  total_tokens: 5,
};
const row = (fields: Partial<UsageRow>): UsageRow => ({ ...base, ...fields });

describe("group names", () => {
  it.each([
    ["model", row({ model_name: "tiny" }), ["tiny"], "tiny"],
    ["user", row({ user_id: 2, username: "alice" }), ["alice"], "alice"],
    ["user", row({ user_id: 9 }), ["(deleted user 9)"], "(deleted user 9)"],
    ["key", row({ api_key_id: 4, api_key_name: "ci", user_id: 2, username: "alice" }), ["ci", "alice"], "ci (alice)"],
    [
      "key",
      row({ api_key_id: 0, api_key_name: "(login session)", user_id: 1, username: "admin" }),
      ["(login session)", "admin"],
      "(login session) (admin)",
    ],
  ] as const)("%s %#", (group, usage, names, label) => {
    expect(groupNames(usage, group)).toEqual(names);
    expect(groupLabel(usage, group)).toBe(label);
  });

  it.each([
    ["model", ["Model"]],
    ["user", ["User"]],
    ["key", ["API key", "User"]],
  ] as const)("%s columns", (group, columns) => {
    expect(groupColumns(group)).toEqual(columns);
  });
});

describe("usageTable", () => {
  it("orders by total tokens and keeps raw counts", () => {
    const rows = [
      row({ model_name: "small", requests: 2, prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 }),
      row({ model_name: "big, slow", requests: 1, prompt_tokens: 1000, completion_tokens: 234, total_tokens: 1234 }),
    ];
    const table = usageTable(rows, "model");
    expect(table.header).toEqual(["Model", "Requests", "Prompt tokens", "Completion tokens", "Total tokens"]);
    expect(table.body).toEqual([
      ["big, slow", 1, 1000, 234, 1234],
      ["small", 2, 10, 5, 15],
    ]);
    expect(toCsv(table.header, table.body)).toBe(
      'Model,Requests,Prompt tokens,Completion tokens,Total tokens\r\n"big, slow",1,1000,234,1234\r\nsmall,2,10,5,15\r\n',
    );
  });

  it("names the file and the request after the grouping and the range", () => {
    expect(usageFilename("model", "2026-11-04", "2026-12-03")).toBe(
      "gpufleet-usage-model-2026-11-04-to-2026-12-03.csv",
    );
    expect(usagePath("key", "2026-11-04", "2026-12-03")).toBe(
      "/api/usage?group_by=key&from=2026-11-04&to=2026-12-03",
    );
  });
});
