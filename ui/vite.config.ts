import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Built into the Python package (gpufleet/ui), which the server serves at "/" on the API's origin.
// Absolute asset URLs (base "/") so deep links such as /workers/3 load them from the root.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../gpufleet/ui",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    // `npm run dev` against a running gpufleet (GPUFLEET_URL, else the default port)
    proxy: {
      "^/api/": process.env.GPUFLEET_URL ?? "http://127.0.0.1:8080", // not /api-keys, a page
      "^/v1/": process.env.GPUFLEET_URL ?? "http://127.0.0.1:8080",
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
