import { describe, expect, it } from "vitest";

import { cosineSimilarity, vectorPreview } from "./similarity";

describe("cosineSimilarity", () => {
  it.each([
    [[1, 0], [1, 0], 1],
    [[1, 0], [0, 1], 0],
    [[1, 2, 3], [-1, -2, -3], -1],
    [[3, 4], [6, 8], 1], // length does not matter
    [[1, 1], [1, 0], Math.SQRT1_2],
    [[0.2, -0.5, 0.1], [0.1, -0.4, 0.3], 0.8951], // 0.25 / sqrt(0.30 × 0.26),
  ])("cos(%j, %j) = %d", (a, b, expected) => {
    expect(cosineSimilarity(a, b)).toBeCloseTo(expected, 4);
  });

  it("has no answer for a zero vector", () => {
    expect(cosineSimilarity([0, 0], [1, 2])).toBeNull();
  });

  it("refuses vectors of different lengths", () => {
    expect(() => cosineSimilarity([1, 2], [1, 2, 3])).toThrow("differ in length");
  });
});

describe("vectorPreview", () => {
  it.each([
    [[0.12345, -0.5], 6, "0.1235, -0.5000"],
    [[1, 2, 3, 4], 2, "1.0000, 2.0000, …"],
    [[], 3, ""],
  ])("%j (first %d) → %s", (vector, count, expected) => {
    expect(vectorPreview(vector, count)).toBe(expected);
  });
});
