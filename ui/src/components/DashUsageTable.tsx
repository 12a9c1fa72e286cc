// The Usage page's table: the group's name(s), then requests and tokens (the same rows as the CSV).

import { Table } from "@mantine/core";

import type { CsvValue } from "../lib/csv";
import { formatCount } from "../lib/format";

export function DashUsageTable({ header, body, names }: { header: string[]; body: CsvValue[][]; names: number }) {
  const totals = header.slice(names).map((_, i) => body.reduce((sum, row) => sum + Number(row[names + i] ?? 0), 0));
  return (
    <Table.ScrollContainer minWidth={600}>
      <Table striped highlightOnHover aria-label="Usage">
        <Table.Thead>
          <Table.Tr>
            {header.map((column, i) => (
              <Table.Th key={column} ta={i < names ? undefined : "right"}>
                {column}
              </Table.Th>
            ))}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {body.map((row, r) => (
            <Table.Tr key={r}>
              {row.map((cell, i) =>
                i < names ? (
                  <Table.Td key={i}>{cell}</Table.Td>
                ) : (
                  <Table.Td key={i} ta="right">
                    {formatCount(Number(cell ?? 0))}
                  </Table.Td>
                ),
              )}
            </Table.Tr>
          ))}
        </Table.Tbody>
        {body.length > 1 && (
          <Table.Tfoot>
            <Table.Tr fw={600}>
              <Table.Td colSpan={names}>Total</Table.Td>
              {totals.map((total, i) => (
                <Table.Td key={i} ta="right">
                  {formatCount(total)}
                </Table.Td>
              ))}
            </Table.Tr>
          </Table.Tfoot>
        )}
      </Table>
    </Table.ScrollContainer>
  );
}
