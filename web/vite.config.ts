/// <reference types="vitest" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API of a running `sentio api` (127.0.0.1:8000).
const api = { target: "http://127.0.0.1:8000", ws: true };

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": api } },
  build: { outDir: "dist", chunkSizeWarningLimit: 400 },
  test: { environment: "jsdom", setupFiles: ["./src/test/setup.ts"] },
});
