// One GET for the Dash* pages: the answer of the path asked for now, its error (the server's own
// message), and whether it is still on its way. A null path asks for nothing; a new `version`
// asks again (a Refresh button).

import { useEffect, useState } from "react";

import { api, describeError } from "../api/client";

interface Answer<T> {
  key: string;
  data: T | null;
  error: string | null;
}

export interface Fetched<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

export function useDashFetch<T>(path: string | null, version = 0): Fetched<T> {
  const [answer, setAnswer] = useState<Answer<T> | null>(null);
  const key = path === null ? null : `${version} ${path}`;

  useEffect(() => {
    if (path === null || key === null) return;
    const controller = new AbortController();
    api<T>(path, { signal: controller.signal }).then(
      (data) => setAnswer({ key, data, error: null }),
      (caught: unknown) => {
        if (!controller.signal.aborted) setAnswer({ key, data: null, error: describeError(caught) });
      },
    );
    return () => controller.abort();
  }, [path, key]);

  const current = answer !== null && answer.key === key ? answer : null;
  return { data: current?.data ?? null, error: current?.error ?? null, loading: key !== null && current === null };
}
