// The Usage page's charts: total tokens and requests per group (loaded on its own, like every chart).

import { BarChart } from "@mantine/charts";
import { SimpleGrid, Stack, Text } from "@mantine/core";

import { formatCount } from "../lib/format";

export interface GroupBar {
  name: string;
  total_tokens: number;
  requests: number;
}

function Bars({ title, data, series }: { title: string; data: GroupBar[]; series: "total_tokens" | "requests" }) {
  const height = Math.max(160, 40 + 32 * data.length);
  return (
    <Stack gap={4}>
      <Text fw={500} size="sm">
        {title}
      </Text>
      <BarChart
        h={height}
        data={data}
        dataKey="name"
        orientation="vertical"
        series={[
          series === "total_tokens"
            ? { name: "total_tokens", label: "Total tokens", color: "blue.6" }
            : { name: "requests", label: "Requests", color: "teal.6" },
        ]}
        valueFormatter={formatCount}
        yAxisProps={{ width: 160 }}
        gridAxis="y"
        tooltipAnimationDuration={0}
      />
    </Stack>
  );
}

export function DashUsageBars({ data, groupName }: { data: GroupBar[]; groupName: string }) {
  return (
    <SimpleGrid cols={{ base: 1, lg: 2 }}>
      <Bars title={`Total tokens per ${groupName}`} data={data} series="total_tokens" />
      <Bars title={`Requests per ${groupName}`} data={data} series="requests" />
    </SimpleGrid>
  );
}
