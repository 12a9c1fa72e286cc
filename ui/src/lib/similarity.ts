// Comparing two embeddings: cosine similarity, and a short preview of a vector's first numbers.

/** cos(a, b) in [-1, 1]; null when a vector is all zeros. Throws when the lengths differ. */
export function cosineSimilarity(a: readonly number[], b: readonly number[]): number | null {
  if (a.length !== b.length) throw new Error(`the vectors differ in length (${a.length} and ${b.length})`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i += 1) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    normA += x * x;
    normB += y * y;
  }
  if (normA === 0 || normB === 0) return null;
  return Math.min(1, Math.max(-1, dot / Math.sqrt(normA * normB)));
}

/** The first `count` numbers to 4 decimals, "…" when there are more: "0.1234, -0.5000, …". */
export function vectorPreview(vector: readonly number[], count = 6): string {
  const shown = vector.slice(0, count).map((value) => value.toFixed(4));
  return vector.length > count ? `${shown.join(", ")}, …` : shown.join(", ");
}
