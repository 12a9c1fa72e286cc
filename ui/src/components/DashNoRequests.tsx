// What an empty usage range says, and where to make a first request.

import { Anchor, Text } from "@mantine/core";
import { Link } from "react-router";

export function DashNoRequests() {
  return (
    <Text c="dimmed" my="md">
      No requests in this range yet:{" "}
      <Anchor component={Link} to="/playground">
        try the Playground
      </Anchor>
    </Text>
  );
}
