import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const security = readFileSync(new URL('../SECURITY.md', import.meta.url), 'utf8')
const refs = [...security.matchAll(/`([a-z0-9/._-]+\.test\.ts) › ([^`]+)`/g)].map((m) => ({ file: m[1] as string, name: m[2] as string }))

function escape (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

describe('SECURITY.md', () => {
  it('names tests behind its defences', () => {
    expect(refs.length).toBeGreaterThan(20)
  })

  it.each(refs)('names a test that exists: $file › $name', ({ file, name }) => {
    const url = new URL(`./${file}`, import.meta.url)
    expect(existsSync(url)).toBe(true)
    const source = readFileSync(url, 'utf8').replaceAll("\\'", "'")
    // "…" stands for the parameter of a table-driven test name.
    const pattern = new RegExp(name.split('…').map(escape).join('.*'))
    expect(source).toMatch(pattern)
  })
})
