import { availableParallelism } from 'node:os'
import { defineConfig } from 'vitest/config'

// Two projects. `unit`: no build, no child process, no real server binary, no real timer deciding an order
// (clocks are injected or faked); `npm run test:unit`. `e2e` (files named `*.e2e.test.ts`, beside the unit
// tests of the part they drive): builds dist/ once, then runs the CLI, processes, Chromium, nginx, Redis and
// the load test; `npm run test:e2e`. `npm test` runs both.
const E2E = 'test/**/*.e2e.test.ts'

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: ['default'],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'text'],
      reportsDirectory: 'coverage',
      reportOnFailure: true,
      thresholds: {
        'src/protocol/**': { lines: 90 },
        'src/keys/**': { lines: 90 },
        'src/receiver/**': { lines: 90 }
      }
    },
    projects: [
      {
        extends: true,
        // One module graph per worker (isolate: false): a unit test leaves no process state behind, and
        // importing fastify and its kin once per worker instead of once per file is most of the run's time.
        // Half the tests wait on sockets, so two workers even on one core.
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [E2E], isolate: false, maxWorkers: Math.max(2, availableParallelism()) }
      },
      {
        extends: true,
        test: { name: 'e2e', include: [E2E], globalSetup: ['test/global-setup.ts'] }
      }
    ]
  }
})
