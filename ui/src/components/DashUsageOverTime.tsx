// The dashboard's usage: requests and tokens over 24 h, 7 d, 30 d or a custom range of UTC days,
// stacked per model, and the range's sums per model (GET /api/usage/series).

import { ActionIcon, Card, Group, Loader, SegmentedControl, Stack, Text, Title, Tooltip } from "@mantine/core";
import { IconRefresh } from "@tabler/icons-react";
import { lazy, Suspense, useMemo, useState } from "react";

import type { UsageSeries } from "../api/types";
import { lastDays, seriesPath, seriesQuery, usageChart, type RangePreset } from "../lib/usageSeries";
import { ErrorBox } from "./ErrorBox";
import { useDashFetch } from "./DashFetch";
import { DashModelTotals } from "./DashModelTotals";
import { DashNoRequests } from "./DashNoRequests";
import { DashRangeInputs, type DayRange } from "./DashRangeInputs";

const DashUsageCharts = lazy(() => import("./DashUsageCharts").then((m) => ({ default: m.DashUsageCharts })));

const PRESETS: { value: RangePreset; label: string }[] = [
  { value: "24h", label: "24 h" },
  { value: "7d", label: "7 d" },
  { value: "30d", label: "30 d" },
  { value: "custom", label: "Custom" },
];

export function DashUsageOverTime() {
  const [preset, setPreset] = useState<RangePreset>("24h");
  const [now, setNow] = useState(() => Date.now());
  const [custom, setCustom] = useState<DayRange>(() => lastDays(7, Date.now()));
  const [version, setVersion] = useState(0);
  const query = seriesQuery(preset, now, custom);
  const series = useDashFetch<UsageSeries>(query ? seriesPath(query) : null, version);
  const keep = query?.keep ?? null;
  const chart = useMemo(() => (series.data ? usageChart(series.data, keep, now) : null), [series.data, keep, now]);

  const refresh = () => {
    setNow(Date.now());
    setVersion((v) => v + 1);
  };

  return (
    <Card withBorder my="md">
      <Group justify="space-between" align="flex-end" mb="sm">
        <Stack gap={0}>
          <Title order={4}>Requests and tokens</Title>
          <Text size="xs" c="dimmed">
            {query?.keep ? "per hour, the last 24 hours (UTC)" : `per day (UTC)${query ? `, ${query.from} to ${query.to}` : ""}`}
          </Text>
        </Stack>
        <Group gap="sm" align="flex-end">
          {preset === "custom" && <DashRangeInputs value={custom} onChange={setCustom} />}
          <SegmentedControl
            aria-label="Range"
            data={PRESETS}
            value={preset}
            onChange={(value) => {
              setPreset(value as RangePreset);
              setNow(Date.now());
            }}
          />
          <Tooltip label="Read again">
            <ActionIcon variant="default" size="lg" onClick={refresh} aria-label="Refresh">
              <IconRefresh size={16} />
            </ActionIcon>
          </Tooltip>
        </Group>
      </Group>
      {!query && (
        <Text size="sm" c="dimmed">
          Pick the first and the last day.
        </Text>
      )}
      <ErrorBox error={series.error} />
      {series.loading && <Loader size="sm" />}
      {chart && chart.empty && <DashNoRequests />}
      {chart && !chart.empty && (
        <Stack>
          <Suspense fallback={<Loader size="sm" />}>
            <DashUsageCharts chart={chart} />
          </Suspense>
          <DashModelTotals totals={chart.totals} />
        </Stack>
      )}
    </Card>
  );
}
