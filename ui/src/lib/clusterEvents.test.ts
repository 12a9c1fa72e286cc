import { describe, expect, it } from "vitest";

import type { WatchEvent } from "../api/types";
import { applyEvent, type ClusterMaps } from "./clusterEvents";

const maps = (): ClusterMaps => ({ workers: new Map(), models: new Map(), instances: new Map() });

// Lines exactly as GET /api/watch sends them.
const line = (text: string) => JSON.parse(text) as WatchEvent;

describe("applyEvent", () => {
  it("adds, modifies and deletes by kind and id", () => {
    const known = maps();
    expect(applyEvent(known, line('{"kind": "models", "type": "ADDED", "id": 1, "object": {"name": "a"}}'))).toBe(true);
    expect(applyEvent(known, line('{"kind": "models", "type": "MODIFIED", "id": 1, "object": {"name": "b"}}'))).toBe(
      true,
    );
    expect(known.models.get(1)).toEqual({ name: "b" });
    expect(applyEvent(known, line('{"kind": "models", "type": "DELETED", "id": 1, "object": {"name": "b"}}'))).toBe(
      true,
    );
    expect(known.models.size).toBe(0);
  });

  it("ignores what changes nothing", () => {
    const known = maps();
    expect(applyEvent(known, line('{"type": "SYNCED"}'))).toBe(false);
    expect(applyEvent(known, line('{"type": "PING"}'))).toBe(false);
    expect(applyEvent(known, line('{"kind": "workers", "type": "DELETED", "id": 7}'))).toBe(false);
    expect(known.workers.size).toBe(0);
  });
});
