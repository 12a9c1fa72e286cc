// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function ApiKeysPage() {
  return <Title order={2}>ApiKeys</Title>;
}
