// What one streamed chat answer is made of (OpenAI chunks: a content delta each, a final usage
// chunk) and how fast it came: tokens per second from the first token to the end.

export interface ChatChunk {
  content: string; // "" when the chunk carries no text
  completionTokens: number | null; // from the usage chunk (stream_options.include_usage)
}

interface WireChunk {
  choices?: { delta?: { content?: string | null } }[];
  usage?: { completion_tokens?: number } | null;
  error?: { message?: string } | string;
}

/** One "data:" payload of /v1/chat/completions; throws the gateway's message for an error event. */
export function parseChatChunk(data: string): ChatChunk {
  const chunk = JSON.parse(data) as WireChunk;
  if (chunk.error) {
    throw new Error(typeof chunk.error === "string" ? chunk.error : (chunk.error.message ?? "the model failed"));
  }
  const content = (chunk.choices ?? []).map((choice) => choice.delta?.content ?? "").join("");
  const tokens = chunk.usage?.completion_tokens;
  return { content, completionTokens: typeof tokens === "number" ? tokens : null };
}

export interface AnswerTiming {
  startedAt: number; // ms, when the request was sent
  firstTokenAt: number | null; // ms, when the first content arrived
  endedAt: number; // ms, when the stream ended
  deltas: number; // content chunks received
  completionTokens: number | null; // the server's count, when it sent one
}

export interface AnswerStats {
  tokens: number;
  tokensPerSecond: number | null; // null when there is no interval to divide by
  firstTokenMs: number | null;
}

export function answerStats(timing: AnswerTiming): AnswerStats {
  const tokens = timing.completionTokens ?? timing.deltas;
  if (timing.firstTokenAt === null) return { tokens, tokensPerSecond: null, firstTokenMs: null };
  const seconds = (timing.endedAt - timing.firstTokenAt) / 1000;
  return {
    tokens,
    tokensPerSecond: seconds > 0 && tokens > 0 ? tokens / seconds : null,
    firstTokenMs: Math.max(0, timing.firstTokenAt - timing.startedAt),
  };
}

/** 23.456 → "23.5 tokens/s"; 151.2 → "151 tokens/s". */
export function formatSpeed(tokensPerSecond: number): string {
  const digits = tokensPerSecond >= 100 ? 0 : 1;
  return `${tokensPerSecond.toFixed(digits)} tokens/s`;
}

/** 180 → "first token after 180 ms"; 2345 → "first token after 2.3 s". */
export function formatFirstToken(ms: number): string {
  return ms < 1000 ? `first token after ${Math.round(ms)} ms` : `first token after ${(ms / 1000).toFixed(1)} s`;
}
