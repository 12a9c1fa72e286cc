// Requests and tokens by model, user or API key over a range of UTC days, as a chart and a table,
// exportable as CSV. Admins see everyone's, a user their own (the server decides). Used by users
// too: no cluster store here, only GET /api/usage.

import { ActionIcon, Button, Group, Loader, SegmentedControl, Stack, Text, Title, Tooltip } from "@mantine/core";
import { IconDownload, IconRefresh } from "@tabler/icons-react";
import { lazy, Suspense, useId, useMemo, useState } from "react";

import type { UsageRow } from "../api/types";
import { useDashFetch } from "../components/DashFetch";
import { DashNoRequests } from "../components/DashNoRequests";
import { DashRangeInputs, type DayRange } from "../components/DashRangeInputs";
import { DashUsageTable } from "../components/DashUsageTable";
import { ErrorBox } from "../components/ErrorBox";
import { toCsv } from "../lib/csv";
import { isDay, lastDays } from "../lib/usageSeries";
import {
  GROUP_OPTIONS,
  groupColumns,
  groupLabel,
  sortUsage,
  usageFilename,
  usagePath,
  usageTable,
  type UsageGroupBy,
} from "../lib/usageTable";
import { useAuth } from "../state/auth";

const DashUsageBars = lazy(() => import("../components/DashUsageBars").then((m) => ({ default: m.DashUsageBars })));

function download(text: string, filename: string) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function UsagePage() {
  const { me } = useAuth();
  const groupLabelId = useId();
  const [group, setGroup] = useState<UsageGroupBy>("model");
  const [range, setRange] = useState<DayRange>(() => lastDays(30, Date.now()));
  const [version, setVersion] = useState(0);
  const complete = isDay(range.from) && isDay(range.to);
  const usage = useDashFetch<UsageRow[]>(complete ? usagePath(group, range.from, range.to) : null, version);
  // The rows belong to the grouping they were asked for: while another one loads, none are shown.
  const rows = usage.data;
  const table = useMemo(() => (rows ? usageTable(rows, group) : null), [rows, group]);
  const bars = useMemo(
    () =>
      rows
        ? sortUsage(rows, group).map((row) => ({
            name: groupLabel(row, group),
            total_tokens: row.total_tokens,
            requests: row.requests,
          }))
        : [],
    [rows, group],
  );
  const groupName = GROUP_OPTIONS.find((o) => o.value === group)?.label ?? group;

  return (
    <>
      <Title order={2}>Usage</Title>
      <Text c="dimmed" size="sm" mb="md">
        {me.role === "admin"
          ? "Everyone's requests through the gateway (/v1), by UTC day."
          : "Your requests through the gateway (/v1), by UTC day: with your API keys and in the Playground."}
      </Text>
      <Group align="flex-end" justify="space-between" mb="md">
        <Group align="flex-end" gap="md">
          <Stack gap={4}>
            <Text size="sm" fw={500} id={groupLabelId}>
              Group by
            </Text>
            <SegmentedControl
              aria-labelledby={groupLabelId}
              data={GROUP_OPTIONS}
              value={group}
              onChange={(value) => setGroup(value as UsageGroupBy)}
            />
          </Stack>
          <DashRangeInputs value={range} onChange={setRange} />
          <Tooltip label="Read again">
            <ActionIcon variant="default" size="lg" onClick={() => setVersion((v) => v + 1)} aria-label="Refresh">
              <IconRefresh size={16} />
            </ActionIcon>
          </Tooltip>
        </Group>
        <Button
          leftSection={<IconDownload size={16} />}
          variant="light"
          disabled={!table}
          onClick={() => table && download(toCsv(table.header, table.body), usageFilename(group, range.from, range.to))}
        >
          Export CSV
        </Button>
      </Group>
      {!complete && <Text c="dimmed">Pick the first and the last day.</Text>}
      <ErrorBox error={usage.error} />
      {usage.loading && <Loader />}
      {table && table.body.length === 0 && <DashNoRequests />}
      {table && table.body.length > 0 && (
        <Stack>
          <Suspense fallback={<Loader size="sm" />}>
            <DashUsageBars data={bars} groupName={group === "key" ? groupName : groupName.toLowerCase()} />
          </Suspense>
          <DashUsageTable header={table.header} body={table.body} names={groupColumns(group).length} />
        </Stack>
      )}
    </>
  );
}
