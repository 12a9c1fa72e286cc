// An API error as the page shows it: the server's own message, never a blank page.

import { Alert } from "@mantine/core";

export function ErrorBox({ error, title = "Something went wrong" }: { error: string | null; title?: string }) {
  if (!error) return null;
  return (
    <Alert color="red" title={title} role="alert" my="sm">
      {error}
    </Alert>
  );
}
