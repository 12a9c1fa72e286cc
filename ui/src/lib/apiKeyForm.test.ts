import { describe, expect, it } from "vitest";

import type { ApiKey } from "../api/types";
import {
  createKeyBody,
  EMPTY_KEY_FORM,
  endOfDayUtc,
  formFromKey,
  limitValue,
  updateKeyBody,
  usageExample,
} from "./apiKeyForm";

const KEY: ApiKey = {
  id: 1,
  name: "ci",
  prefix: "gf_abc",
  user_id: 1,
  username: "admin",
  expires_at: "2020-01-31T23:59:59Z", // already past
  allowed_models: ["b", "a"],
  requests_per_minute: 60,
  tokens_per_day: null,
  created_at: "2019-01-01T00:00:00Z",
  last_used_at: null,
};

describe("fields", () => {
  it.each([
    ["", null],
    ["2027-01-31", "2027-01-31T23:59:59Z"],
    [" 2027-12-01 ", "2027-12-01T23:59:59Z"],
  ])("expiry %j → %j", (date, iso) => {
    expect(endOfDayUtc(date)).toBe(iso);
  });

  it("refuses what is not a date", () => {
    expect(() => endOfDayUtc("tomorrow")).toThrow("not a date");
  });

  it.each([
    ["", null],
    [60, 60],
    ["120", 120],
    [2.6, 3],
  ])("limit %j → %j", (value, limit) => {
    expect(limitValue(value)).toBe(limit);
  });
});

describe("bodies", () => {
  it("creates a key without restrictions from an empty form", () => {
    expect(createKeyBody({ ...EMPTY_KEY_FORM, name: " ci " })).toEqual({
      name: "ci",
      expires_at: null,
      allowed_models: null,
      requests_per_minute: null,
      tokens_per_day: null,
    });
  });

  it("creates a key with every restriction", () => {
    const form = {
      name: "ci",
      allowedModels: ["tiny"],
      expires: "2027-01-31",
      requestsPerMinute: 10,
      tokensPerDay: 1000,
    };
    expect(createKeyBody(form)).toEqual({
      name: "ci",
      expires_at: "2027-01-31T23:59:59Z",
      allowed_models: ["tiny"],
      requests_per_minute: 10,
      tokens_per_day: 1000,
    });
  });

  it("fills the edit form from a key", () => {
    expect(formFromKey(KEY)).toEqual({
      name: "ci",
      allowedModels: ["b", "a"],
      expires: "2020-01-31",
      requestsPerMinute: 60,
      tokensPerDay: "",
    });
  });

  it.each([
    ["nothing changed", {}, {}],
    ["an emptied limit sends null", { requestsPerMinute: "" }, { requests_per_minute: null }],
    ["a new limit", { tokensPerDay: 5000 }, { tokens_per_day: 5000 }],
    ["models in another order are the same", { allowedModels: ["a", "b"] }, {}],
    ["no models left: all models", { allowedModels: [] }, { allowed_models: null }],
    ["a new expiry", { expires: "2030-06-01" }, { expires_at: "2030-06-01T23:59:59Z" }],
    ["no expiry", { expires: "" }, { expires_at: null }],
  ])("edit: %s", (_name, change, body) => {
    expect(updateKeyBody({ ...formFromKey(KEY), ...change }, KEY)).toEqual(body);
  });
});

it("shows how to call the gateway with the key", () => {
  const example = usageExample("https://gpu.example/v1", "gf_secret", "tiny");
  expect(example).toContain("curl https://gpu.example/v1/chat/completions");
  expect(example).toContain('-H "Authorization: Bearer gf_secret"');
  expect(example).toContain('"model":"tiny"');
});
