// Vite build of the console: output in dist/ (the hub embeds it), hashed
// assets under /assets/, no external origins. `npm run dev` proxies the API
// to a hub on SIGNET_HUB (default http://127.0.0.1:8080).
import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

const hub = process.env.SIGNET_HUB ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    // Everything inline-free: the hub's Content-Security-Policy allows no inline script.
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: { '/api': { target: hub, changeOrigin: false } },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
    setupFiles: ['src/test-setup.ts'],
  },
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
});
