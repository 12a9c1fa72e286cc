import { describe, expect, it } from "vitest";

import { SseParser, sseData } from "./sse";

function feed(chunks: string[]): string[] {
  const parser = new SseParser();
  return [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
}

const STREAM = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n';

describe("SseParser", () => {
  it.each([
    ["whole", [STREAM]],
    ["cut mid-line", ['data: {"a"', ':1}\n\nda', 'ta: {"b":2}\n', "\ndata: [DONE]\n\n"]],
    ["one character at a time", STREAM.split("")],
    ["CRLF cut between \\r and \\n", ['data: {"a":1}\r', "\n\r\n", 'data: {"b":2}\r\n\r\ndata: [DONE]\r\n\r\n']],
  ])("yields complete events only (%s)", (_name, chunks) => {
    expect(feed(chunks)).toEqual(['{"a":1}', '{"b":2}', "[DONE]"]);
  });

  it("waits for the blank line that ends an event", () => {
    const parser = new SseParser();
    expect(parser.push('data: {"a":1}\n')).toEqual([]);
    expect(parser.push("\n")).toEqual(['{"a":1}']);
  });

  it.each([
    ["comments and other fields are skipped", ": keep-alive\nevent: message\nid: 3\ndata: x\n\n", ["x"]],
    ["several data lines join with a newline", "data: one\ndata: two\n\n", ["one\ntwo"]],
    ["no space after the colon", "data:x\n\n", ["x"]],
    ["only the first space is removed", "data:  x\n\n", [" x"]],
    ["a lone \\r ends a line", "data: x\r\rdata: y\r\r", ["x", "y"]],
    ["blank lines alone make no event", "\n\n\n", []],
  ])("%s", (_name, text, expected) => {
    expect(feed([text])).toEqual(expected);
  });

  it("hands back an unterminated last event when the stream ends", () => {
    const parser = new SseParser();
    expect(parser.push("data: tail")).toEqual([]);
    expect(parser.end()).toEqual(["tail"]);
  });
});

describe("sseData", () => {
  function body(chunks: string[]): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder();
    return new ReadableStream({
      start(controller) {
        chunks.forEach((chunk) => controller.enqueue(encoder.encode(chunk)));
        controller.close();
      },
    });
  }

  async function collect(stream: ReadableStream<Uint8Array>): Promise<string[]> {
    const out: string[] = [];
    for await (const data of sseData(stream)) out.push(data);
    return out;
  }

  it("stops at [DONE]", async () => {
    expect(await collect(body(['data: {"a":1}\n\ndata: [DO', "NE]\n\ndata: after\n\n"]))).toEqual(['{"a":1}']);
  });

  it("decodes a character cut between two chunks", async () => {
    const bytes = new TextEncoder().encode("data: héllo\n\n");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 8)); // "data: h" + the first byte of é
        controller.enqueue(bytes.slice(8));
        controller.close();
      },
    });
    expect(await collect(stream)).toEqual(["héllo"]);
  });

  it("ends with the stream when no [DONE] comes", async () => {
    expect(await collect(body(["data: a\n\n", "data: b"]))).toEqual(["a", "b"]);
  });
});
