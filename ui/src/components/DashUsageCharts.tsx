// Requests and tokens over time, stacked per model (loaded on its own: the charting library is
// the heaviest part of the app and the dashboard's numbers should not wait for it).

import { BarChart } from "@mantine/charts";
import { SimpleGrid, Stack, Text } from "@mantine/core";

import { formatCount } from "../lib/format";
import type { UsageChart } from "../lib/usageSeries";

function Chart({ title, chart, rows }: { title: string; chart: UsageChart; rows: UsageChart["requests"] }) {
  return (
    <Stack gap={4}>
      <Text fw={500} size="sm">
        {title}
      </Text>
      <BarChart
        h={240}
        data={rows}
        dataKey="label"
        type="stacked"
        series={chart.models.map((m) => ({ name: m.key, label: m.model, color: m.color }))}
        valueFormatter={formatCount}
        withLegend
        tickLine="y"
        tooltipAnimationDuration={0}
      />
    </Stack>
  );
}

export function DashUsageCharts({ chart }: { chart: UsageChart }) {
  return (
    <SimpleGrid cols={{ base: 1, lg: 2 }}>
      <Chart title="Requests over time" chart={chart} rows={chart.requests} />
      <Chart title="Tokens over time" chart={chart} rows={chart.tokens} />
    </SimpleGrid>
  );
}
