import { describe, expect, it } from "vitest";

import { csvField, toCsv } from "./csv";

describe("csvField", () => {
  it.each([
    ["plain", "plain"],
    ["", ""],
    [null, ""],
    [undefined, ""],
    [0, "0"],
    [1234567, "1234567"],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['"', '""""'],
    ["two\nlines", '"two\nlines"'],
    ["cr\rlf", '"cr\rlf"'],
    [" spaced ", " spaced "],
    ["qwen2.5:0.5b", "qwen2.5:0.5b"],
  ])("%j → %s", (value, expected) => {
    expect(csvField(value)).toBe(expected);
  });
});

describe("toCsv", () => {
  it("writes a header row and CRLF-ended lines", () => {
    expect(toCsv(["Model", "Requests"], [["tiny", 3], ["big, slow", 12]])).toBe(
      'Model,Requests\r\ntiny,3\r\n"big, slow",12\r\n',
    );
  });

  it("is only the header without rows", () => {
    expect(toCsv(["API key", "User"], [])).toBe("API key,User\r\n");
  });

  it("quotes header fields like any other", () => {
    expect(toCsv(['a "b"', "c"], [[null, "x\ny"]])).toBe('"a ""b""",c\r\n,"x\ny"\r\n');
  });
});
