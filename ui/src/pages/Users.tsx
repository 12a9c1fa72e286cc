// Users: who may sign in and with which role; create, change a role, reset a password, delete.

import { Badge, Center, Group, Loader, Stack, Table, Text, Title } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useCallback, useEffect, useState } from "react";

import { api, describeError } from "../api/client";
import type { User } from "../api/types";
import { ErrorBox } from "../components/ErrorBox";
import { UserConfirmButton } from "../components/UserConfirmButton";
import { UserCreateButton, UserPasswordButton, UserRoleSelect } from "../components/UserDialogs";
import { useAuth } from "../state/auth";

export function UsersPage() {
  const { me } = useAuth();
  const [users, setUsers] = useState<User[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const reload = useCallback(() => setVersion((v) => v + 1), []);

  useEffect(() => {
    const controller = new AbortController();
    api<User[]>("/api/users", { signal: controller.signal }).then(
      (found) => {
        setUsers(found);
        setError(null);
      },
      (caught: unknown) => {
        if (!controller.signal.aborted) setError(describeError(caught));
      },
    );
    return () => controller.abort();
  }, [version]);

  async function remove(user: User) {
    await api(`/api/users/${user.id}`, { method: "DELETE" });
    notifications.show({ color: "green", title: "User deleted", message: `${user.username} can no longer sign in.` });
    reload();
  }

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Users</Title>
        <UserCreateButton onChanged={reload} />
      </Group>
      <ErrorBox error={error} title="Cannot read the users" />
      {users === null ? (
        !error && (
          <Center p="xl">
            <Loader />
          </Center>
        )
      ) : (
        <Table striped highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Username</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Must change password</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>Actions</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {users.map((user) => (
              <Table.Tr key={user.id}>
                <Table.Td>
                  <Group gap="xs">
                    <Text fw={500}>{user.username}</Text>
                    {user.id === me.id && (
                      <Badge size="sm" variant="light" tt="none">
                        you
                      </Badge>
                    )}
                  </Group>
                </Table.Td>
                <Table.Td>
                  <UserRoleSelect user={user} onChanged={reload} />
                </Table.Td>
                <Table.Td>{user.must_change_password ? "yes" : "no"}</Table.Td>
                <Table.Td title={user.created_at}>{user.created_at.slice(0, 10)}</Table.Td>
                <Table.Td>
                  <Group gap="xs" wrap="nowrap">
                    <UserPasswordButton user={user} onChanged={reload} />
                    <UserConfirmButton
                      label="Delete"
                      title={`Delete user ${user.username}?`}
                      message={`${user.username} can no longer sign in; their sessions and API keys stop working.`}
                      confirmLabel="Delete user"
                      onConfirm={() => remove(user)}
                    />
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}
