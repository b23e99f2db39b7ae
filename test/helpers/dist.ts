import { execFileSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function newestMtime (dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }
  return newest
}

/**
 * Tests that run `node dist/...` as a real process need a build of the current
 * sources. `npm ci` builds (prepare); this rebuilds only when `src/` is newer.
 */
export function ensureBuilt (): void {
  let built = 0
  try { built = statSync(join(ROOT, 'dist', 'cli.js')).mtimeMs } catch { built = 0 }
  if (built >= newestMtime(join(ROOT, 'src'))) return
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' })
}
