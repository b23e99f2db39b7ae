import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CONFIG_VARIABLES } from '../../src/server/config.js'
import { FORWARD_OUTCOMES } from '../../src/server/forward.js'
import { METRIC_NAMES } from '../../src/server/metrics.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const section = (heading: string): string => {
  const start = readme.indexOf(`\n## ${heading}\n`)
  expect(start).toBeGreaterThan(-1)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end === -1 ? undefined : end)
}

describe('the README', () => {
  it('has a configuration row for every environment variable the server reads, and no other', () => {
    const rows = [...section('Configuration').matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1])
    expect(new Set(rows)).toEqual(new Set(CONFIG_VARIABLES))
  })

  it('has a row for every metric the server exports, and no other', () => {
    const rows = [...section('Metrics and health').matchAll(/^\| `(oss_callback_[a-z_]+)` \|/gm)].map((m) => m[1])
    expect(new Set(rows)).toEqual(new Set(Object.values(METRIC_NAMES)))
  })

  it('names every forward outcome label', () => {
    const row = section('Metrics and health').split('\n').find((l) => l.startsWith(`| \`${METRIC_NAMES.forwards}\``)) ?? ''
    for (const outcome of FORWARD_OUTCOMES) expect(row).toContain(`\`${outcome}\``)
  })
})
