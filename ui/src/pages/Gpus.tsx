// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function GpusPage() {
  return <Title order={2}>Gpus</Title>;
}
