// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function ModelPage() {
  return <Title order={2}>Model</Title>;
}
