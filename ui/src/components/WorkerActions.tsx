// Per-worker actions: maintenance on/off (PATCH {state}) and delete (its instances go back to
// pending and are placed elsewhere).

import { Switch } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useState } from "react";

import { api, describeError } from "../api/client";
import type { Worker } from "../api/types";
import { UserConfirmButton } from "./UserConfirmButton";

export function WorkerMaintenanceSwitch({ worker }: { worker: Worker }) {
  const [busy, setBusy] = useState(false);
  const on = worker.state === "maintenance";

  async function toggle(next: boolean) {
    setBusy(true);
    try {
      await api(`/api/workers/${worker.id}`, { method: "PATCH", body: { state: next ? "maintenance" : "ready" } });
      notifications.show({
        color: "green",
        title: next ? "Maintenance on" : "Maintenance off",
        message: next
          ? `${worker.name} takes no new instances while in maintenance.`
          : `${worker.name} takes instances again.`,
      });
    } catch (caught) {
      notifications.show({ color: "red", title: "Maintenance not changed", message: describeError(caught) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <Switch
      label="Maintenance"
      size="sm"
      checked={on}
      disabled={busy}
      onChange={(event) => void toggle(event.currentTarget.checked)}
    />
  );
}

export function WorkerDeleteButton({ worker, onDeleted }: { worker: Worker; onDeleted?: () => void }) {
  return (
    <UserConfirmButton
      label="Delete"
      title={`Delete worker ${worker.name}?`}
      message={
        `gpufleet forgets ${worker.name}. Its instances go back to pending and are placed on other ` +
        "workers when they fit. If the machine still runs gpufleet, it registers again at its next heartbeat."
      }
      confirmLabel="Delete worker"
      onConfirm={async () => {
        await api(`/api/workers/${worker.id}`, { method: "DELETE" });
        notifications.show({ color: "green", title: "Worker deleted", message: `${worker.name} was deleted.` });
        onDeleted?.();
      }}
    />
  );
}
