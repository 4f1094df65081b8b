import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The UI is served by the gateway itself (kernel/src/http/routes/ui.ts) under
// a CSP without 'unsafe-inline': no inline script or style may be emitted, so
// CSS goes to a file and the module preload polyfill (an inline helper in
// older Vite) is off. Asset names carry a content hash for the long cache.
export default defineConfig({
  plugins: [svelte({ compilerOptions: { css: 'external' } })],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
