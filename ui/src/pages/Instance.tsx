// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function InstancePage() {
  return <Title order={2}>Instance</Title>;
}
