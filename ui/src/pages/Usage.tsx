// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function UsagePage() {
  return <Title order={2}>Usage</Title>;
}
