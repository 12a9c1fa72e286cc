// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function PlaygroundPage() {
  return <Title order={2}>Playground</Title>;
}
