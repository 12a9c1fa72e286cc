import { describe, expect, it } from "vitest";

import { appendLog, commandLine, logUrl } from "./instanceLog";

describe("appendLog", () => {
  it.each([
    ["", "a\nb\n", 5, "a\nb\n"],
    ["a\n", "b\nc\n", 2, "b\nc\n"],
    ["a\nb", "c\nd", 2, "bc\nd"], // a chunk continues the partial last line
    ["a\nb\nc", "", 2, "b\nc"],
    ["", "one line, no newline", 1, "one line, no newline"],
    ["a\n", "b\n", 0, ""],
  ])("%j + %j kept to %d lines → %j", (kept, chunk, lines, expected) => {
    expect(appendLog(kept, chunk, lines)).toBe(expected);
  });

  it("keeps 2000 lines by default", () => {
    const many = Array.from({ length: 2500 }, (_, i) => `line ${i}\n`).join("");
    const kept = appendLog("", many);
    expect(kept.split("\n").filter(Boolean)).toHaveLength(2000);
    expect(kept.startsWith("line 500\n")).toBe(true);
  });
});

describe("commandLine and logUrl", () => {
  it.each([
    [["llama-server", "-m", "/m/x.gguf", "--alias", "tiny"], "llama-server -m /m/x.gguf --alias tiny"],
    [[], null],
    [null, null],
  ])("%j → %j", (argv, expected) => {
    expect(commandLine(argv)).toBe(expected);
  });

  it("follows the last 200 lines by default", () => {
    expect(logUrl(7)).toBe("/api/model-instances/7/logs?tail=200&follow=true");
    expect(logUrl("3", 10, false)).toBe("/api/model-instances/3/logs?tail=10&follow=false");
  });
});
