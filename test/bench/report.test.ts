import { describe, expect, it } from 'vitest'
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { targets } from '../../bench/report.js'

interface Target { what: string, target: string, met: boolean | null }

describe('the benchmark targets', () => {
  const run = {
    kind: 'full',
    ratios: { 'c/a': 0.7, 'c/b': 0.82, 'c/d': 1.75, 'c/e': 5.44, 'c2048/b': 0.65, 'c2048/d2048': 8.63 },
    coldBurst: null,
    memory: null
  }

  it('have no c/d target at 512 bits (bounded by a/d, about 2.5), and keep the 2048-bit one', () => {
    const rows = (targets as (r: unknown) => Target[])(run)
    expect(rows.map((t) => t.what)).toEqual(['c/b (req/s ratio)', 'c2048/d2048 (req/s ratio)', 'c/e (req/s ratio)'])
    expect(rows.every((t) => t.met === true)).toBe(true)
  })
})
