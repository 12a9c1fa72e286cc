// Users: create one, change a role, set a new password (the user must change it at next sign-in).

import { Button, Group, Modal, PasswordInput, Select, Stack, TextInput } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useState, type FormEvent } from "react";

import { api, describeError } from "../api/client";
import type { Role, User } from "../api/types";
import { ErrorBox } from "./ErrorBox";

// The eye button's name must not contain "password": tests find the field by its label "Password".
const SHOW = { "aria-label": "Show or hide the characters" };

export const ROLES: { value: Role; label: string }[] = [
  { value: "admin", label: "admin" },
  { value: "user", label: "user" },
];

export function UserCreateButton({ onChanged }: { onChanged: () => void }) {
  const [opened, setOpened] = useState(false);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("user");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const open = () => {
    setUsername("");
    setPassword("");
    setRole("user");
    setError(null);
    setOpened(true);
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api<User>("/api/users", { body: { username: username.trim(), password, role } });
      notifications.show({ color: "green", title: "User created", message: `${username.trim()} can sign in now.` });
      setOpened(false);
      onChanged();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <Button onClick={open}>Create user</Button>
      <Modal opened={opened} onClose={() => setOpened(false)} title="Create user">
        <form onSubmit={submit}>
          <Stack>
            <TextInput
              label="Username"
                  value={username}
              onChange={(event) => setUsername(event.currentTarget.value)}
              data-autofocus
            />
            <PasswordInput
              visibilityToggleButtonProps={SHOW}
              label="Password"
              description="At least 8 characters"
                  value={password}
              onChange={(event) => setPassword(event.currentTarget.value)}
            />
            <Select
              label="Role"
              data={ROLES}
              value={role}
              onChange={(value) => value && setRole(value as Role)}
              allowDeselect={false}
              comboboxProps={{ withinPortal: true }}
            />
            <ErrorBox error={error} title="The user was not created" />
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpened(false)}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Create
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}

export function UserRoleSelect({ user, onChanged }: { user: User; onChanged: () => void }) {
  const [busy, setBusy] = useState(false);

  async function change(role: Role) {
    if (role === user.role) return;
    setBusy(true);
    try {
      await api(`/api/users/${user.id}`, { method: "PATCH", body: { role } });
      notifications.show({ color: "green", title: "Role changed", message: `${user.username} is now ${role}.` });
      onChanged();
    } catch (caught) {
      notifications.show({ color: "red", title: "Role not changed", message: describeError(caught) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <Select
      aria-label={`Role of ${user.username}`}
      size="xs"
      w={110}
      data={ROLES}
      value={user.role}
      disabled={busy}
      allowDeselect={false}
      onChange={(value) => value && void change(value as Role)}
    />
  );
}

export function UserPasswordButton({ user, onChanged }: { user: User; onChanged: () => void }) {
  const [opened, setOpened] = useState(false);
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const open = () => {
    setPassword("");
    setError(null);
    setOpened(true);
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api(`/api/users/${user.id}`, { method: "PATCH", body: { password } });
      notifications.show({ color: "green", title: "Password set", message: `${user.username}'s password was reset.` });
      setOpened(false);
      onChanged();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <Button size="xs" variant="light" onClick={open}>
        Reset password
      </Button>
      <Modal opened={opened} onClose={() => setOpened(false)} title={`Reset the password of ${user.username}`}>
        <form onSubmit={submit}>
          <Stack>
            <PasswordInput
              visibilityToggleButtonProps={SHOW}
              label="New password"
              description="At least 8 characters. The user's open sessions end; they choose their own password at the next sign-in."
                  value={password}
              onChange={(event) => setPassword(event.currentTarget.value)}
              data-autofocus
            />
            <ErrorBox error={error} title="The password was not set" />
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpened(false)}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Set password
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}
