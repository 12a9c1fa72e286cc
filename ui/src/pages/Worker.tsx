// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function WorkerPage() {
  return <Title order={2}>Worker</Title>;
}
