// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function DashboardPage() {
  return <Title order={2}>Dashboard</Title>;
}
