import { invalidOption } from '../errors.js'

/** The default retry delays: the last one repeats until the retry window is spent. */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = Object.freeze([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000])
/** The default retry window: 3 days from the first append (or the last redelivery). */
export const DEFAULT_RETRY_FOR_MS = 3 * 86_400_000
/** Each delay is drawn from ±this fraction around its nominal value. */
export const DEFAULT_JITTER = 0.2

/** The retry plan of a worker. */
export interface RetryPolicy {
  scheduleMs: readonly number[]
  retryForMs: number
  jitter: number
  /** Uniform in [0, 1). */
  random: () => number
}

export function checkRetryPolicy (policy: RetryPolicy): RetryPolicy {
  if (policy.scheduleMs.length === 0 || policy.scheduleMs.some((ms) => !Number.isSafeInteger(ms) || ms <= 0)) {
    throw invalidOption('retry schedule must be one or more positive durations')
  }
  if (!Number.isSafeInteger(policy.retryForMs) || policy.retryForMs <= 0) throw invalidOption('retryFor must be a positive duration')
  if (!(policy.jitter >= 0 && policy.jitter < 1)) throw invalidOption('retry jitter must be a fraction from 0 to below 1')
  return policy
}

/**
 * When a pending event is next due after its `attempts`-th failed attempt (1 for the first),
 * or null when its retry window (`retrySince` + `retryForMs`) is spent: then it is dead. The
 * last attempt falls on the window's end rather than past it.
 */
export function nextAttemptAt (policy: RetryPolicy, attempts: number, retrySince: number, now: number): number | null {
  const end = retrySince + policy.retryForMs
  if (now >= end) return null
  const nominal = policy.scheduleMs[Math.min(Math.max(attempts, 1), policy.scheduleMs.length) - 1] as number
  const delay = Math.round(nominal * (1 - policy.jitter + 2 * policy.jitter * policy.random()))
  return Math.min(now + Math.max(delay, 1), end)
}
