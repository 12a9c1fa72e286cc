// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function ModelsPage() {
  return <Title order={2}>Models</Title>;
}
