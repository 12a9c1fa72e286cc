// Chat with a running model through the gateway, streamed: each delta is appended as it arrives;
// under each answer its speed ("N tokens/s") and its time to the first token.

import { Button, Group, Loader, NumberInput, Paper, ScrollArea, Stack, Text, Textarea } from "@mantine/core";
import { useEffect, useRef, useState, type KeyboardEvent } from "react";

import { describeError, errorMessage } from "../api/client";
import { answerStats, formatFirstToken, formatSpeed, parseChatChunk, type AnswerStats } from "../lib/chatStream";
import { sseData } from "../lib/sse";

interface Turn {
  role: "user" | "assistant";
  content: string;
  pending?: boolean;
  stopped?: boolean;
  error?: string;
  stats?: AnswerStats;
}

function replaceLast(turns: Turn[], patch: Partial<Turn>): Turn[] {
  const last = turns[turns.length - 1];
  return last ? [...turns.slice(0, -1), { ...last, ...patch }] : turns;
}

function AnswerFooter({ turn }: { turn: Turn }) {
  const { stats } = turn;
  return (
    <Group gap="md" mt={4}>
      {stats?.tokensPerSecond != null && (
        <Text size="xs" c="dimmed">
          {formatSpeed(stats.tokensPerSecond)}
        </Text>
      )}
      {stats?.firstTokenMs != null && (
        <Text size="xs" c="dimmed">
          {formatFirstToken(stats.firstTokenMs)}
        </Text>
      )}
      {stats && (
        <Text size="xs" c="dimmed">
          {stats.tokens === 1 ? "1 token" : `${stats.tokens} tokens`}
        </Text>
      )}
      {turn.stopped && (
        <Text size="xs" c="orange">
          stopped
        </Text>
      )}
    </Group>
  );
}

function TurnView({ turn }: { turn: Turn }) {
  const user = turn.role === "user";
  return (
    <Paper p="sm" radius="md" bg={user ? "blue.0" : "gray.0"} ml={user ? "xl" : 0} mr={user ? 0 : "xl"}>
      <Text size="xs" fw={600} c="dimmed">
        {user ? "You" : "Assistant"}
      </Text>
      {turn.content && (
        <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
          {turn.content}
        </Text>
      )}
      {turn.pending && !turn.content && <Loader size="xs" type="dots" />}
      {turn.error && (
        <Text size="sm" c="red" role="alert">
          {turn.error}
        </Text>
      )}
      {!user && !turn.pending && <AnswerFooter turn={turn} />}
    </Paper>
  );
}

export function PlaygroundChat({ model }: { model: string | null }) {
  const [system, setSystem] = useState("");
  const [temperature, setTemperature] = useState<number | string>(0.7);
  const [maxTokens, setMaxTokens] = useState<number | string>(256);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => () => abort.current?.abort(), []); // leaving the page stops the stream

  async function send() {
    const text = message.trim();
    if (!text || !model || busy) return;
    const history = turns
      .filter((turn) => !turn.error && turn.content)
      .map((turn) => ({ role: turn.role, content: turn.content }));
    const messages = [
      ...(system.trim() ? [{ role: "system", content: system.trim() }] : []),
      ...history,
      { role: "user", content: text },
    ];
    const body: Record<string, unknown> = { model, messages, stream: true, stream_options: { include_usage: true } };
    if (temperature !== "") body.temperature = Number(temperature);
    if (maxTokens !== "") body.max_tokens = Number(maxTokens);

    setTurns((current) => [...current, { role: "user", content: text }, { role: "assistant", content: "", pending: true }]);
    setMessage("");
    setBusy(true);
    const controller = new AbortController();
    abort.current = controller;
    const startedAt = performance.now();
    let firstTokenAt: number | null = null;
    let deltas = 0;
    let completionTokens: number | null = null;
    let content = "";
    const stats = () => answerStats({ startedAt, firstTokenAt, endedAt: performance.now(), deltas, completionTokens });
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) throw new Error(await errorMessage(response));
      if (!response.body) throw new Error("the gateway answered without a body");
      for await (const data of sseData(response.body)) {
        const chunk = parseChatChunk(data);
        if (chunk.content) {
          firstTokenAt ??= performance.now();
          deltas += 1;
          content += chunk.content;
          const now = content;
          setTurns((current) => replaceLast(current, { content: now }));
        }
        if (chunk.completionTokens !== null) completionTokens = chunk.completionTokens;
      }
      const done = stats();
      setTurns((current) => replaceLast(current, { pending: false, stats: done }));
    } catch (caught) {
      const stopped = controller.signal.aborted;
      const partial = firstTokenAt !== null ? stats() : undefined;
      setTurns((current) =>
        replaceLast(current, { pending: false, stopped, stats: partial, error: stopped ? undefined : describeError(caught) }),
      );
    } finally {
      abort.current = null;
      setBusy(false);
    }
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      void send();
    }
  }

  return (
    <Stack>
      <Group align="flex-start" grow>
        <Textarea
          label="System prompt"
          placeholder="Optional: how the assistant should behave"
          autosize
          minRows={1}
          maxRows={4}
          value={system}
          onChange={(event) => setSystem(event.currentTarget.value)}
        />
        <NumberInput label="Temperature" min={0} max={2} step={0.1} decimalScale={2} value={temperature} onChange={setTemperature} maw={160} />
        <NumberInput label="Max tokens" min={1} allowDecimal={false} value={maxTokens} onChange={setMaxTokens} maw={160} />
      </Group>
      <ScrollArea.Autosize mah="55vh" type="auto">
        <Stack gap="sm">
          {turns.length === 0 ? (
            <Text c="dimmed" size="sm">
              {model ? `Ask ${model} something below.` : "Choose a running model above to chat with it."}
            </Text>
          ) : (
            turns.map((turn, index) => <TurnView key={index} turn={turn} />)
          )}
        </Stack>
      </ScrollArea.Autosize>
      <Textarea
        label="Message"
        description="Enter sends, Shift+Enter starts a new line"
        autosize
        minRows={2}
        maxRows={8}
        value={message}
        onChange={(event) => setMessage(event.currentTarget.value)}
        onKeyDown={onKeyDown}
      />
      <Group justify="space-between">
        <Button variant="default" onClick={() => setTurns([])} disabled={busy || turns.length === 0}>
          Clear
        </Button>
        <Group>
          {busy && (
            <Button color="red" variant="light" onClick={() => abort.current?.abort()}>
              Stop
            </Button>
          )}
          <Button onClick={() => void send()} disabled={busy || !model || !message.trim()}>
            Send
          </Button>
        </Group>
      </Group>
    </Stack>
  );
}
