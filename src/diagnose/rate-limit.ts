import { invalidOption } from '../errors.js'

/** A token bucket: at most `perSecond` takes a second on average, with bursts of up to `perSecond`. */
export interface RateLimiter {
  /** Takes one token when there is one; false when over the rate. */
  take: () => boolean
}

/** Diagnoses (and captures) allowed per second and process by default. */
export const DEFAULT_DIAGNOSES_PER_SECOND = 20

/** A token bucket on the clock `now` (ms). The bucket starts full. */
export function createRateLimiter (perSecond: number = DEFAULT_DIAGNOSES_PER_SECOND, now: () => number = Date.now): RateLimiter {
  if (!Number.isFinite(perSecond) || perSecond <= 0 || perSecond > 1_000_000) {
    throw invalidOption(`diagnosesPerSecond must be a number above 0 and at most 1000000, got ${String(perSecond)}`)
  }
  const capacity = Math.max(1, perSecond)
  let tokens = capacity
  let last = now()
  return {
    take () {
      const t = now()
      // A clock that steps back must not mint tokens or stall the bucket.
      if (t > last) tokens = Math.min(capacity, tokens + (t - last) * perSecond / 1000)
      last = t
      if (tokens < 1) return false
      tokens -= 1
      return true
    }
  }
}
