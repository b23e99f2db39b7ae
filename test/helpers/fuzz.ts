/**
 * How many cases a property runs. `npm test` uses `base`; `npm run fuzz` sets
 * FUZZ_RUNS (1,000,000) and every property runs that many instead.
 */
export function fuzzRuns (base: number): number {
  const text = process.env.FUZZ_RUNS
  if (text === undefined || text === '') return base
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`FUZZ_RUNS must be a positive whole number, got ${JSON.stringify(text)}`)
  return n
}

/** True during `npm run fuzz`: tests give themselves no time limit then. */
export const FUZZING = (process.env.FUZZ_RUNS ?? '') !== ''

/** A vitest timeout for a property: `ms` normally, none while fuzzing. */
export function propertyTimeout (ms: number): number {
  return FUZZING ? 24 * 60 * 60 * 1000 : ms
}
