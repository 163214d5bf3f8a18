import { defineConfig } from 'vitest/config';

// Two projects: `unit` (no ports beyond loopback, no real web servers) and `servers`
// (tests that start nginx, Apache or lighttpd; they skip with a printed reason when the
// server is missing, and never skip under CI=true).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/servers/**'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'servers',
          include: ['test/servers/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
