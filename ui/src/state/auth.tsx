// Who is signed in (GET /api/auth/me), and the screens before the app: sign in, then the forced
// password change while must_change_password is set. A 401 anywhere signs the person out.

import { Alert, Button, Center, Loader, Paper, PasswordInput, Stack, TextInput, Title } from "@mantine/core";
import { createContext, useCallback, useContext, useEffect, useState, type FormEvent, type ReactNode } from "react";

import { api, ApiError, describeError, onSignedOut } from "../api/client";
import type { Me } from "../api/types";

interface Auth {
  me: Me;
  refresh: () => Promise<void>;
  signOut: () => Promise<void>;
}

const AuthContext = createContext<Auth | null>(null);

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside AuthGate");
  return auth;
}

export function AuthGate({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<Me | null | undefined>(undefined); // undefined: not known yet
  const [error, setError] = useState<string | null>(null);

  const refresh = useCallback(
    () =>
      api<Me>("/api/auth/me", { quiet401: true }).then(
        (found) => {
          setMe(found);
          setError(null);
        },
        (caught: unknown) => {
          if (caught instanceof ApiError && caught.status === 401) setMe(null);
          else setError(describeError(caught));
        },
      ),
    [],
  );

  useEffect(() => {
    void refresh();
    return onSignedOut(() => setMe(null));
  }, [refresh]);

  const signOut = useCallback(async () => {
    try {
      await api("/api/auth/logout", { method: "POST", quiet401: true });
    } finally {
      setMe(null);
    }
  }, []);

  if (me === undefined) {
    return (
      <Center h="100vh">
        {error ? <Alert color="red" title="Cannot reach the gpufleet server">{error}</Alert> : <Loader />}
      </Center>
    );
  }
  if (me === null) return <SignIn onSignedIn={refresh} />;
  if (me.must_change_password) return <ChangePassword onChanged={refresh} />;
  return <AuthContext.Provider value={{ me, refresh, signOut }}>{children}</AuthContext.Provider>;
}

// The show/hide button's own name must not contain "password": a field is found by its label.
// No `required` either: Mantine adds " *" to the accessible name; the server checks what is missing.
const TOGGLE = { "aria-label": "Show or hide the characters" };

function Card({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Center h="100vh" bg="gray.0">
      <Paper withBorder shadow="sm" p="xl" w={380}>
        <Title order={2} mb="md">
          {title}
        </Title>
        {children}
      </Paper>
    </Center>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: () => Promise<void> }) {
  const [username, setUsername] = useState("admin");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api("/api/auth/login", { body: { username, password }, quiet401: true });
      await onSignedIn();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card title="Sign in to gpufleet">
      <form onSubmit={submit}>
        <Stack>
          <TextInput label="Username" value={username} onChange={(e) => setUsername(e.currentTarget.value)} />
          <PasswordInput
            label="Password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            description="First start: the admin's password is in <data-dir>/initial_admin_password"
            visibilityToggleButtonProps={TOGGLE}
            autoFocus
          />
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <Button type="submit" loading={busy}>
            Sign in
          </Button>
        </Stack>
      </form>
    </Card>
  );
}

function ChangePassword({ onChanged }: { onChanged: () => Promise<void> }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api("/api/auth/password", { body: { current_password: current, new_password: next } });
      await onChanged();
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card title="Choose a new password">
      <form onSubmit={submit}>
        <Stack>
          <Alert color="blue">This password was generated for the first start: replace it before going on.</Alert>
          <PasswordInput
            label="Current password"
            value={current}
            onChange={(e) => setCurrent(e.currentTarget.value)}
            visibilityToggleButtonProps={TOGGLE}
          />
          <PasswordInput
            label="New password"
            description="At least 8 characters"
            value={next}
            onChange={(e) => setNext(e.currentTarget.value)}
            visibilityToggleButtonProps={TOGGLE}
          />
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <Button type="submit" loading={busy}>
            Change password
          </Button>
        </Stack>
      </form>
    </Card>
  );
}
