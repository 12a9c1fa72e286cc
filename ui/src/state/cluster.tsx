// The cluster as the admin pages see it, kept live by one watch stream (workers, models, instances):
// no page polls a table. Devices with their allocations (GET /api/devices) are read again whenever
// an instance or a worker changes, since a claim or a device changed with them.

import { createContext, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";

import { api } from "../api/client";
import type { DeviceDetail, Instance, Model, Worker } from "../api/types";
import { watch } from "../api/watch";
import { applyEvent, type ClusterMaps } from "../lib/clusterEvents";

export interface Cluster {
  workers: Worker[];
  models: Model[];
  instances: Instance[];
  devices: DeviceDetail[];
  synced: boolean; // the first listing arrived
  connected: boolean; // the watch stream is open now
}

interface Maps extends ClusterMaps {
  workers: Map<number, Worker>;
  models: Map<number, Model>;
  instances: Map<number, Instance>;
}

const empty = (): Maps => ({ workers: new Map(), models: new Map(), instances: new Map() });

const ClusterContext = createContext<Cluster | null>(null);

const byName = <T extends { name: string }>(a: T, b: T) => a.name.localeCompare(b.name);

export function ClusterProvider({ children }: { children: ReactNode }) {
  const [maps, setMaps] = useState<Maps>(empty);
  const [devices, setDevices] = useState<DeviceDetail[]>([]);
  const [synced, setSynced] = useState(false);
  const [connected, setConnected] = useState(false);
  const listing = useRef<Maps | null>(null);
  const live = useRef<Maps>(maps);
  const devicesDue = useRef(true);

  useEffect(() => {
    let flush = 0;
    let fetching = false;
    let again = false; // a change arrived while a read was in flight: read once more after it
    const refreshDevices = () => {
      if (fetching) {
        again = true;
        return;
      }
      fetching = true;
      devicesDue.current = false;
      api<DeviceDetail[]>("/api/devices")
        .then(setDevices)
        .catch(() => {
          devicesDue.current = true; // the next change tries again
        })
        .finally(() => {
          fetching = false;
          if (again) {
            again = false;
            refreshDevices();
          }
        });
    };
    const publish = () => {
      if (flush) return;
      flush = window.setTimeout(() => {
        flush = 0;
        const current = live.current;
        setMaps({
          workers: new Map(current.workers),
          models: new Map(current.models),
          instances: new Map(current.instances),
        });
        if (devicesDue.current) refreshDevices();
      }, 50); // bursts of events (a listing, a roll) render once
    };
    const stop = watch(["workers", "models", "instances"], {
      onOpen: () => {
        listing.current = empty();
      },
      onEvent: (event) => {
        if (event.type === "SYNCED") {
          if (listing.current) live.current = listing.current;
          listing.current = null;
          devicesDue.current = true;
          setSynced(true);
          publish();
          return;
        }
        const target = listing.current ?? live.current;
        if (applyEvent(target, event) && !listing.current) {
          if (event.kind !== "models") devicesDue.current = true;
          publish();
        }
      },
      onStatus: setConnected,
    });
    return () => {
      stop();
      window.clearTimeout(flush);
    };
  }, []);

  const value = useMemo<Cluster>(
    () => ({
      workers: [...maps.workers.values()].sort(byName),
      models: [...maps.models.values()].sort(byName),
      instances: [...maps.instances.values()].sort(byName),
      devices,
      synced,
      connected,
    }),
    [maps, devices, synced, connected],
  );
  return <ClusterContext.Provider value={value}>{children}</ClusterContext.Provider>;
}

export function useCluster(): Cluster {
  const cluster = useContext(ClusterContext);
  if (!cluster) throw new Error("useCluster outside ClusterProvider");
  return cluster;
}
