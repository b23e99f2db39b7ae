import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { listErrorCodes } from '../src/errors.js'

const read = (file: string): string => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')
const table = read('docs/errors.md')
const pages = ['README.md', 'SECURITY.md', ...readdirSync(new URL('../docs/', import.meta.url)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
const rows = [...table.matchAll(/^\| `(OSS_CB_ERR_[A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => ({ code: m[1], statusCode: Number(m[2]) }))

describe('the error table of docs/errors.md', () => {
  it('lists every registered code with its status, once', () => {
    const registry = listErrorCodes().map(({ code, statusCode }) => ({ code, statusCode }))
    const sort = (a: { code?: string }, b: { code?: string }): number => String(a.code).localeCompare(String(b.code))
    expect([...rows].sort(sort)).toEqual([...registry].sort(sort))
  })

  it('lists the codes in the registry\'s order', () => {
    expect(rows.map((r) => r.code)).toEqual(listErrorCodes().map((e) => e.code))
  })

  it.each(pages)('names no code the registry lacks anywhere in %s', (page) => {
    const registered = new Set(listErrorCodes().map((e) => e.code))
    const mentioned = new Set([...read(page).matchAll(/OSS_CB_ERR_[A-Z0-9_]+/g)].map((m) => m[0]))
    expect([...mentioned].filter((c) => !registered.has(c))).toEqual([])
  })
})
