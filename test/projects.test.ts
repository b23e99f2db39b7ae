import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ROOT } from './helpers/process.js'

// The unit project (everything not named *.e2e.test.ts) runs without dist/ and without child processes: a file that
// starts a process, a server binary or a browser, or reads the build, must be named *.e2e.test.ts.
const E2E_ONLY = [/node:child_process/, /\brunCli\b/, /helpers\/redis-server\.js'/, /helpers\/nginx\.js'/, /helpers\/postgres-server\.js'/, /playwright/, /\.\.\/dist\//, /from 'oss-callback(\/[a-z]+)?'/]

function testFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [])
}

describe('the unit project', () => {
  it('holds no test that needs a build, a process, a server binary or a browser', () => {
    const offenders = testFiles(join(ROOT, 'test'))
      .filter((f) => !f.endsWith('.e2e.test.ts') && f !== fileURLToPath(import.meta.url))
      .filter((f) => { const text = readFileSync(f, 'utf8'); return E2E_ONLY.some((re) => re.test(text)) })
      .map((f) => f.slice(ROOT.length))
    expect(offenders).toEqual([])
  })
})
