import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'node',
    include: ['electron/**/*.test.ts', 'renderer/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ORT sessions use native threads; forks isolate them from each other.
    pool: 'forks',
  },
});
