import { describe, expect, it } from "vitest";

import { answerStats, formatFirstToken, formatSpeed, parseChatChunk } from "./chatStream";

describe("parseChatChunk", () => {
  it.each([
    ['{"choices":[{"delta":{"content":"Hel"}}]}', { content: "Hel", completionTokens: null }],
    ['{"choices":[{"delta":{"role":"assistant"}}]}', { content: "", completionTokens: null }],
    ['{"choices":[{"delta":{"content":null},"finish_reason":"stop"}]}', { content: "", completionTokens: null }],
    ['{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":24}}', { content: "", completionTokens: 24 }],
    ['{"choices":[{"delta":{"content":"!"}}],"usage":{"completion_tokens":3}}', { content: "!", completionTokens: 3 }],
    ['{"choices":[{"delta":{}}],"usage":null}', { content: "", completionTokens: null }],
  ])("%s", (data, expected) => {
    expect(parseChatChunk(data)).toEqual(expected);
  });

  it("throws the message of an error event", () => {
    expect(() => parseChatChunk('{"error":{"message":"the engine stopped"}}')).toThrow("the engine stopped");
  });
});

describe("answerStats", () => {
  it.each([
    // the server's count wins over the number of deltas
    [{ startedAt: 0, firstTokenAt: 180, endedAt: 2180, deltas: 10, completionTokens: 40 }, 40, 20, 180],
    // without a usage chunk: one token per content delta
    [{ startedAt: 100, firstTokenAt: 600, endedAt: 1600, deltas: 12, completionTokens: null }, 12, 12, 500],
    // no interval to divide by
    [{ startedAt: 0, firstTokenAt: 50, endedAt: 50, deltas: 1, completionTokens: 1 }, 1, null, 50],
    // no token at all
    [{ startedAt: 0, firstTokenAt: null, endedAt: 900, deltas: 0, completionTokens: 0 }, 0, null, null],
  ])("%o", (timing, tokens, speed, firstTokenMs) => {
    expect(answerStats(timing)).toEqual({ tokens, tokensPerSecond: speed, firstTokenMs });
  });
});

describe("formatting", () => {
  it.each([
    [20, "20.0 tokens/s"],
    [23.456, "23.5 tokens/s"],
    [151.2, "151 tokens/s"],
  ])("%d → %s", (speed, text) => {
    expect(formatSpeed(speed)).toBe(text);
    expect(text).toMatch(/^\d+(\.\d+)? tokens\/s$/);
  });

  it.each([
    [180, "first token after 180 ms"],
    [999.6, "first token after 1000 ms"],
    [2345, "first token after 2.3 s"],
  ])("%d ms → %s", (ms, text) => {
    expect(formatFirstToken(ms)).toBe(text);
  });
});
