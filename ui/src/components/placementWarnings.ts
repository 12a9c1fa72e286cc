// The server's warnings in a model create or update answer ("only 145 of 1000 replicas can be
// placed now; …"), shown until dismissed: a deploy that cannot be placed in full must say so.

import { notifications } from "@mantine/notifications";

import type { Model } from "../api/types";

export function showPlacementWarnings(model: Model): void {
  for (const warning of model.warnings ?? []) {
    notifications.show({ color: "yellow", title: "Not every replica fits now", message: warning, autoClose: false });
  }
}
