// Per model: requests and tokens over the chosen range.

import { Table } from "@mantine/core";

import { formatCount } from "../lib/format";
import type { ModelTotals } from "../lib/usageSeries";

export function DashModelTotals({ totals }: { totals: ModelTotals[] }) {
  const sum = (pick: (t: ModelTotals) => number) => totals.reduce((s, t) => s + pick(t), 0);
  return (
    <Table.ScrollContainer minWidth={520}>
      <Table striped aria-label="Usage per model">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Model</Table.Th>
            <Table.Th ta="right">Requests</Table.Th>
            <Table.Th ta="right">Prompt tokens</Table.Th>
            <Table.Th ta="right">Completion tokens</Table.Th>
            <Table.Th ta="right">Total</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {totals.map((t) => (
            <Table.Tr key={t.model_name}>
              <Table.Td>{t.model_name}</Table.Td>
              <Table.Td ta="right">{formatCount(t.requests)}</Table.Td>
              <Table.Td ta="right">{formatCount(t.prompt_tokens)}</Table.Td>
              <Table.Td ta="right">{formatCount(t.completion_tokens)}</Table.Td>
              <Table.Td ta="right">{formatCount(t.total_tokens)}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
        {totals.length > 1 && (
          <Table.Tfoot>
            <Table.Tr fw={600}>
              <Table.Td>All models</Table.Td>
              <Table.Td ta="right">{formatCount(sum((t) => t.requests))}</Table.Td>
              <Table.Td ta="right">{formatCount(sum((t) => t.prompt_tokens))}</Table.Td>
              <Table.Td ta="right">{formatCount(sum((t) => t.completion_tokens))}</Table.Td>
              <Table.Td ta="right">{formatCount(sum((t) => t.total_tokens))}</Table.Td>
            </Table.Tr>
          </Table.Tfoot>
        )}
      </Table>
    </Table.ScrollContainer>
  );
}
