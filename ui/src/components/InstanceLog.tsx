// An instance's engine log, streamed (GET …/logs?tail=200&follow=true read chunk by chunk), kept to
// its last 2000 lines and scrolled to the end as it grows. "Follow" off stops the stream; on reopens
// it. The stream also reopens when the engine moves or restarts, and stops when the page goes.

import { Group, Paper, ScrollArea, Stack, Switch, Text, Title } from "@mantine/core";
import { useEffect, useRef, useState } from "react";

import { describeError, errorMessage } from "../api/client";
import { appendLog, logUrl } from "../lib/instanceLog";
import { ErrorBox } from "./ErrorBox";

type StreamState = "opening" | "streaming" | "ended" | "stopped";

export function InstanceLog({ instanceId, engineKey }: { instanceId: number; engineKey: string }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [follow, setFollow] = useState(true);
  const [stream, setStream] = useState<StreamState>("opening");
  const viewport = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);

  useEffect(() => {
    if (!follow) return;
    const controller = new AbortController();
    const read = async () => {
      const response = await fetch(logUrl(instanceId), { credentials: "same-origin", signal: controller.signal });
      if (!response.ok) {
        setError(await errorMessage(response));
        setStream("ended");
        return;
      }
      setError(null);
      setText(""); // the tail starts the text again
      setStream("streaming");
      if (!response.body) return;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        setText((kept) => appendLog(kept, value));
      }
      setStream("ended");
    };
    read().catch((e: unknown) => {
      if (controller.signal.aborted) return;
      setError(describeError(e));
      setStream("ended");
    });
    return () => {
      controller.abort();
    };
  }, [instanceId, engineKey, follow]);

  useEffect(() => {
    const element = viewport.current;
    if (element && atBottom.current) element.scrollTop = element.scrollHeight;
  }, [text]);

  const toggle = (on: boolean) => {
    setFollow(on);
    setStream(on ? "opening" : "stopped");
  };

  const status: Record<StreamState, string> = {
    opening: "opening…",
    streaming: "following",
    ended: "not following: switch Follow off and on to read it again",
    stopped: "stopped",
  };

  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Group gap="sm">
          <Title order={3}>Log</Title>
          <Text size="xs" c="dimmed">
            {status[stream]}
          </Text>
        </Group>
        <Switch label="Follow" checked={follow} onChange={(event) => toggle(event.currentTarget.checked)} />
      </Group>
      <ErrorBox error={error} title="Cannot read the log" />
      <Paper withBorder hidden={Boolean(error) && !text}>
        <ScrollArea
          h={420}
          viewportRef={viewport}
          onScrollPositionChange={({ y }) => {
            const element = viewport.current;
            if (element) atBottom.current = element.scrollHeight - element.clientHeight - y < 24;
          }}
        >
          <Text
            component="pre"
            data-testid="instance-log"
            ff="monospace"
            size="xs"
            p="sm"
            m={0}
            style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}
          >
            {text || (stream === "streaming" ? "(empty so far)" : "")}
          </Text>
        </ScrollArea>
      </Paper>
    </Stack>
  );
}
