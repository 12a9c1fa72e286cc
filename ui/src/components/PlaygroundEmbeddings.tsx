// Compare two texts with an embedding model: the vectors' dimension, their cosine similarity and
// their first numbers. A model that does not embed answers an error, shown as the gateway says it.

import { Button, Code, Group, Paper, SimpleGrid, Stack, Text, Textarea } from "@mantine/core";
import { useState } from "react";

import { api, describeError } from "../api/client";
import { cosineSimilarity, vectorPreview } from "../lib/similarity";
import { ErrorBox } from "./ErrorBox";

interface EmbeddingsAnswer {
  data: { index: number; embedding: number[] }[];
  usage?: { prompt_tokens?: number };
}

interface Result {
  first: number[];
  second: number[];
  similarity: number | null;
  tokens: number | null;
}

export function PlaygroundEmbeddings({ model }: { model: string | null }) {
  const [first, setFirst] = useState("");
  const [second, setSecond] = useState("");
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function embed() {
    if (!model) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const answer = await api<EmbeddingsAnswer>("/v1/embeddings", { body: { model, input: [first, second] } });
      const vectors = [...answer.data].sort((a, b) => a.index - b.index).map((item) => item.embedding);
      const [a, b] = vectors;
      if (!a || !b) throw new Error(`the model returned ${vectors.length} vectors for 2 texts`);
      setResult({ first: a, second: b, similarity: cosineSimilarity(a, b), tokens: answer.usage?.prompt_tokens ?? null });
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Stack>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Textarea label="First text" autosize minRows={3} value={first} onChange={(e) => setFirst(e.currentTarget.value)} />
        <Textarea label="Second text" autosize minRows={3} value={second} onChange={(e) => setSecond(e.currentTarget.value)} />
      </SimpleGrid>
      <Group>
        <Button onClick={() => void embed()} loading={busy} disabled={!model || !first.trim() || !second.trim()}>
          Embed
        </Button>
        {!model && (
          <Text size="sm" c="dimmed">
            Choose a running embedding model above.
          </Text>
        )}
      </Group>
      <ErrorBox error={error} title="The embedding failed" />
      {result && (
        <Paper withBorder p="md">
          <Stack gap="xs">
            <Group gap="xl">
              <Text>
                Dimension: <b>{result.first.length}</b>
              </Text>
              <Text>
                Cosine similarity: <b>{result.similarity === null ? "— (a zero vector)" : result.similarity.toFixed(4)}</b>
              </Text>
              {result.tokens !== null && <Text c="dimmed">{result.tokens} prompt tokens</Text>}
            </Group>
            <Text size="sm">First text:</Text>
            <Code block>[{vectorPreview(result.first, 8)}]</Code>
            <Text size="sm">Second text:</Text>
            <Code block>[{vectorPreview(result.second, 8)}]</Code>
          </Stack>
        </Paper>
      )}
    </Stack>
  );
}
