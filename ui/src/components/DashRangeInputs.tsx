// A range of UTC days: "From" and "To" date inputs (YYYY-MM-DD, both included).

import { Group, TextInput } from "@mantine/core";

export interface DayRange {
  from: string;
  to: string;
}

export function DashRangeInputs({ value, onChange }: { value: DayRange; onChange: (range: DayRange) => void }) {
  return (
    <Group gap="sm" align="flex-end">
      <TextInput
        type="date"
        label="From"
        value={value.from}
        max={value.to || undefined}
        onChange={(e) => onChange({ ...value, from: e.currentTarget.value })}
      />
      <TextInput
        type="date"
        label="To"
        value={value.to}
        min={value.from || undefined}
        onChange={(e) => onChange({ ...value, to: e.currentTarget.value })}
      />
    </Group>
  );
}
