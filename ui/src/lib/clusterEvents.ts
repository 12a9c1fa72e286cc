// Applying one /api/watch event to what the UI knows of the cluster (workers, models, instances by id).
// The event's spelling is the server's (gpufleet/schemas/events.py): ADDED, MODIFIED, DELETED.

import type { WatchEvent } from "../api/types";

export interface ClusterMaps {
  workers: Map<number, unknown>;
  models: Map<number, unknown>;
  instances: Map<number, unknown>;
}

/** Apply ``event``; true when it changed something. SYNCED and PING change nothing. */
export function applyEvent(maps: ClusterMaps, event: WatchEvent): boolean {
  if (!event.kind || event.id === undefined) return false;
  const map = maps[event.kind];
  if (event.type === "DELETED") return map.delete(event.id);
  if ((event.type === "ADDED" || event.type === "MODIFIED") && event.object) {
    map.set(event.id, event.object);
    return true;
  }
  return false;
}
