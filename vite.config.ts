// Vite build of the renderer: an ordinary web app in renderer/, built to dist/renderer and served by app:// in
// Electron or by the Node host in browser mode. Relative asset URLs work under both origins.

import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('./renderer', import.meta.url)),
  base: './',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('./dist/renderer', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    // The CSP allows no inline script or style: keep every asset a separate file.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1500,
  },
});
