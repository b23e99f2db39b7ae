import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'

/**
 * Builds `dist/` once before the tests: the end-to-end tests run the CLI as users
 * do (`node dist/cli.js ...`), and must run the code under test, not a stale build.
 */
export default function setup (): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
  // The demo page ships beside the compiled code, as `npm run build` leaves it.
  execFileSync(process.execPath, ['scripts/copy-demo-assets.js'], { stdio: 'inherit' })
}
