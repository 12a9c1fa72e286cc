// Placeholder: filled in by its own change.
import { Title } from "@mantine/core";

export function UsersPage() {
  return <Title order={2}>Users</Title>;
}
