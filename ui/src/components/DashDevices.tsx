// Devices in the order every Dash* page lists them: by worker, GPUs before the CPU, by index.

import type { DeviceDetail } from "../api/types";

export function sortDevices(devices: DeviceDetail[]): DeviceDetail[] {
  return [...devices].sort(
    (a, b) =>
      a.worker_name.localeCompare(b.worker_name) ||
      Number(a.type === "cpu") - Number(b.type === "cpu") ||
      a.type.localeCompare(b.type) ||
      a.index - b.index,
  );
}

export function isGpu(device: DeviceDetail): boolean {
  return device.type !== "cpu";
}
