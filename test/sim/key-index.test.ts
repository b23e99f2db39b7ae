import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compareKeys, SortedKeys } from '../../src/sim/key-index.js'

const key = fc.string({ unit: 'binary', maxLength: 6 })

describe('key index', () => {
  it('compareKeys orders as UTF-8 bytes do (OSS listing order), not as UTF-16 code units', () => {
    expect(compareKeys('\u{1F600}', '\uFFFD')).toBeGreaterThan(0)
    expect('\u{1F600}' < '\uFFFD').toBe(true)
    fc.assert(fc.property(key, key, (a, b) => {
      expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))))
    }))
  })

  it('stays sorted and unique through adds and removes, and seeks and skips prefixes by binary search', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), key), { maxLength: 60 }), key, (ops, probe) => {
      const index = new SortedKeys()
      const model = new Set<string>()
      for (const [add, k] of ops) {
        if (add) { index.add(k); model.add(k) } else { index.remove(k); model.delete(k) }
      }
      const expected = [...model].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      expect(Array.from({ length: index.size }, (_, i) => index.at(i))).toEqual(expected)
      const after = expected.findIndex((k) => compareKeys(k, probe) > 0)
      expect(index.seek(probe, false)).toBe(after < 0 ? expected.length : after)
      const from = index.seek(probe, true)
      const end = index.skipPrefix(from, probe)
      expect(expected.slice(from, end).every((k) => k.startsWith(probe))).toBe(true)
      expect(expected.slice(end).some((k) => k.startsWith(probe))).toBe(false)
    }))
  })
})
