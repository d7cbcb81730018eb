import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests start servers and child processes; two cores are shared.
    fileParallelism: true,
    maxWorkers: 2,
    env: { MEDIAFLOW_LOG_LEVEL: 'silent' },
  },
});
