// The fields of an API key's scope and limits, shared by "Create API key" and "Edit limits":
// allowed models (empty = all), expiry (a date, the key works through that UTC day), requests per
// minute and tokens per day (empty = unlimited).

import { MultiSelect, NumberInput, SimpleGrid, Stack, TextInput } from "@mantine/core";
import { useEffect, useState } from "react";

import { api } from "../api/client";
import type { Model } from "../api/types";
import type { KeyForm } from "../lib/apiKeyForm";

/** The deployed models' names, for "Allowed models" (plus any the key already names). */
function useModelNames(extra: string[]): string[] {
  const [names, setNames] = useState<string[]>([]);
  useEffect(() => {
    const controller = new AbortController();
    api<Model[]>("/api/models", { signal: controller.signal }).then(
      (models) => setNames(models.map((model) => model.name)),
      () => undefined, // no list: the field still takes the names already chosen
    );
    return () => controller.abort();
  }, []);
  return [...new Set([...names, ...extra])].sort();
}

interface Props {
  form: KeyForm;
  onChange: (form: KeyForm) => void;
  withName: boolean;
}

export function KeyFormFields({ form, onChange, withName }: Props) {
  const models = useModelNames(form.allowedModels);
  const set = (patch: Partial<KeyForm>) => onChange({ ...form, ...patch });
  const today = new Date().toISOString().slice(0, 10);
  return (
    <Stack>
      {withName && (
        <TextInput
          label="Name"
          description="To recognise the key in lists and usage"
          maxLength={64}
          value={form.name}
          onChange={(event) => set({ name: event.currentTarget.value })}
          data-autofocus
        />
      )}
      <MultiSelect
        label="Allowed models"
        description="Empty: all models"
        placeholder={form.allowedModels.length ? undefined : "all models"}
        data={models}
        value={form.allowedModels}
        onChange={(allowedModels) => set({ allowedModels })}
        searchable
        clearable
        comboboxProps={{ withinPortal: true }}
      />
      <TextInput
        type="date"
        label="Expires"
        description="The key works through this day (UTC). Empty: never"
        min={today}
        value={form.expires}
        onChange={(event) => set({ expires: event.currentTarget.value })}
      />
      <SimpleGrid cols={2}>
        <NumberInput
          label="Requests per minute"
          description="Empty: unlimited"
          min={1}
          max={1_000_000}
          allowDecimal={false}
          allowNegative={false}
          value={form.requestsPerMinute}
          onChange={(requestsPerMinute) => set({ requestsPerMinute })}
        />
        <NumberInput
          label="Tokens per day"
          description="Prompt + completion, per UTC day. Empty: unlimited"
          min={1}
          allowDecimal={false}
          allowNegative={false}
          thousandSeparator=","
          value={form.tokensPerDay}
          onChange={(tokensPerDay) => set({ tokensPerDay })}
        />
      </SimpleGrid>
    </Stack>
  );
}
