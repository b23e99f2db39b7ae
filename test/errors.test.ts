import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { listErrorCodes } from '../src/errors.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const rows = [...readme.matchAll(/^\| `(OSS_CB_ERR_[A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => ({ code: m[1], statusCode: Number(m[2]) }))

describe('the README error table', () => {
  it('lists every registered code with its status, once', () => {
    const registry = listErrorCodes().map(({ code, statusCode }) => ({ code, statusCode }))
    const sort = (a: { code?: string }, b: { code?: string }): number => String(a.code).localeCompare(String(b.code))
    expect([...rows].sort(sort)).toEqual([...registry].sort(sort))
  })

  it('lists the codes in the registry\'s order', () => {
    expect(rows.map((r) => r.code)).toEqual(listErrorCodes().map((e) => e.code))
  })

  it('names no code the registry lacks anywhere in the README', () => {
    const registered = new Set(listErrorCodes().map((e) => e.code))
    const mentioned = new Set([...readme.matchAll(/OSS_CB_ERR_[A-Z0-9_]+/g)].map((m) => m[0]))
    expect([...mentioned].filter((c) => !registered.has(c))).toEqual([])
  })
})
