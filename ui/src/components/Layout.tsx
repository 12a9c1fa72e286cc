// The frame of every page: the left navigation (its links named exactly as the pages), who is signed
// in, and whether live updates are flowing.

import { AppShell, Badge, Button, Group, NavLink, Stack, Text, Title } from "@mantine/core";
import {
  IconChartBar,
  IconCpu,
  IconDashboard,
  IconKey,
  IconMessageChatbot,
  IconServer,
  IconStack2,
  IconUsers,
} from "@tabler/icons-react";
import type { ReactNode } from "react";
import { NavLink as RouterLink, useLocation } from "react-router";

import { useAuth } from "../state/auth";
import { ErrorBoundary } from "./ErrorBoundary";
import { useCluster } from "../state/cluster";

interface Link {
  to: string;
  label: string;
  icon: ReactNode;
  admin: boolean;
}

export const LINKS: Link[] = [
  { to: "/", label: "Dashboard", icon: <IconDashboard size={18} />, admin: true },
  { to: "/workers", label: "Workers", icon: <IconServer size={18} />, admin: true },
  { to: "/gpus", label: "GPUs", icon: <IconCpu size={18} />, admin: true },
  { to: "/models", label: "Models", icon: <IconStack2 size={18} />, admin: true },
  { to: "/playground", label: "Playground", icon: <IconMessageChatbot size={18} />, admin: false },
  { to: "/api-keys", label: "API keys", icon: <IconKey size={18} />, admin: false },
  { to: "/users", label: "Users", icon: <IconUsers size={18} />, admin: true },
  { to: "/usage", label: "Usage", icon: <IconChartBar size={18} />, admin: false },
];

function LiveBadge() {
  const { connected, synced } = useCluster();
  if (connected) return <Badge color="green" variant="light">live</Badge>;
  return (
    <Badge color={synced ? "orange" : "gray"} variant="light" title="the watch stream reconnects by itself">
      {synced ? "reconnecting…" : "connecting…"}
    </Badge>
  );
}

export function Layout({ children, admin }: { children: ReactNode; admin: boolean }) {
  const { me, signOut } = useAuth();
  const location = useLocation();
  const active = (to: string) => (to === "/" ? location.pathname === "/" : location.pathname.startsWith(to));
  return (
    <AppShell navbar={{ width: 220, breakpoint: "sm" }} header={{ height: 52 }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Title order={3}>gpufleet</Title>
          <Group gap="sm">
            {admin && <LiveBadge />}
            <Text size="sm" c="dimmed">
              {me.username} ({me.role})
            </Text>
            <Button size="xs" variant="default" onClick={() => void signOut()}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main navigation">
        <Stack gap={2}>
          {LINKS.filter((link) => admin || !link.admin).map((link) => (
            <NavLink
              key={link.to}
              component={RouterLink}
              to={link.to}
              label={link.label}
              leftSection={link.icon}
              active={active(link.to)}
            />
          ))}
        </Stack>
      </AppShell.Navbar>
      <AppShell.Main>
        <ErrorBoundary resetKey={location.pathname}>{children}</ErrorBoundary>
      </AppShell.Main>
    </AppShell>
  );
}
