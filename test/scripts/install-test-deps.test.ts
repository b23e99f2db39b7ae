import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/process.js'

const script = readFileSync(`${ROOT}scripts/install-test-deps.sh`, 'utf8')
const readme = readFileSync(`${ROOT}README.md`, 'utf8')
const ci = readFileSync(`${ROOT}.ci/run`, 'utf8')

describe('the system packages the tests need', () => {
  const scriptPackages = /^PACKAGES=\(([^)]*)\)$/m.exec(script)?.[1]?.trim().split(/\s+/) ?? []

  it('the README test command installs exactly the script\'s packages, then runs npm ci && npm test, on one line', () => {
    const line = /^apt-get update && apt-get install -y ([a-z0-9 .+-]+) && npm ci && npm test$/m.exec(readme)
    expect(line).not.toBeNull()
    expect(scriptPackages).toEqual(expect.arrayContaining(['redis-server', 'chromium', 'nginx', 'postgresql']))
    expect((line?.[1] ?? '').split(' ').sort()).toEqual([...scriptPackages].sort())
  })

  it('the test command sits near the top of the README', () => {
    const lineNo = readme.split('\n').findIndex((l) => l.endsWith('&& npm ci && npm test'))
    expect(lineNo).toBeGreaterThan(0)
    expect(lineNo).toBeLessThan(60)
  })

  it('CI installs them with the script', () => {
    expect(ci).toMatch(/^scripts\/install-test-deps\.sh$/m)
    expect(ci).not.toMatch(/apt-get install/)
  })
})
