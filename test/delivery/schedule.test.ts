import { describe, expect, it } from 'vitest'
import { GlobalBackoff } from '../../src/delivery/backoff.js'
import { checkRetryPolicy, DEFAULT_RETRY_FOR_MS, DEFAULT_RETRY_SCHEDULE_MS, nextAttemptAt, type RetryPolicy } from '../../src/delivery/schedule.js'
import { parseDuration, parseDurationList } from '../../src/duration.js'

const policy = (over: Partial<RetryPolicy> = {}): RetryPolicy =>
  ({ scheduleMs: DEFAULT_RETRY_SCHEDULE_MS, retryForMs: DEFAULT_RETRY_FOR_MS, jitter: 0.2, random: () => 0.5, ...over })

describe('durations', () => {
  it('parses <n>s|m|h|d, and lists of them', () => {
    expect(parseDuration('5s')).toBe(5000)
    expect(parseDuration('30m')).toBe(1_800_000)
    expect(parseDuration('2h')).toBe(7_200_000)
    expect(parseDuration('3d')).toBe(259_200_000)
    expect(parseDurationList('5s,5m,30m,2h,5h,10h')).toEqual([...DEFAULT_RETRY_SCHEDULE_MS])
  })

  it.each(['', '5', 's', '1.5h', '-1s', '0s', '5 s', '5ms', '1w', '5s,', ',5s'])('refuses %j in one line naming the option', (text) => {
    expect(() => parseDurationList(text, 'OSS_CALLBACK_RETRY_SCHEDULE')).toThrow(/^Invalid option: OSS_CALLBACK_RETRY_SCHEDULE must be/)
  })
})

describe('retry schedule', () => {
  const t0 = 1_000_000_000_000

  it('follows 5s, 5m, 30m, 2h, 5h, 10h, then every 10 h, without jitter at the midpoint', () => {
    const p = policy()
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => (nextAttemptAt(p, n, t0, t0) as number) - t0)
    expect(delays).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000, 36_000_000])
  })

  it('jitter stays within ±20 % of each delay', () => {
    for (const [random, factor] of [[0, 0.8], [0.999999, 1.2], [0.25, 0.9]] as const) {
      const p = policy({ random: () => random })
      for (const [n, nominal] of DEFAULT_RETRY_SCHEDULE_MS.entries()) {
        const d = (nextAttemptAt(p, n + 1, t0, t0) as number) - t0
        expect(Math.abs(d - nominal * factor)).toBeLessThanOrEqual(nominal * 1e-5 + 1)
      }
    }
    // And many random draws, all in bounds.
    const p = policy({ random: Math.random })
    for (let i = 0; i < 1000; i++) {
      const d = (nextAttemptAt(p, 1, t0, t0) as number) - t0
      expect(d).toBeGreaterThanOrEqual(4000)
      expect(d).toBeLessThanOrEqual(6000)
    }
  })

  it('the last attempt falls on the end of the retry window; after it the event is dead', () => {
    const p = policy({ retryForMs: 3 * 86_400_000 })
    const end = t0 + 3 * 86_400_000
    expect(nextAttemptAt(p, 20, t0, end - 1000)).toBe(end)
    expect(nextAttemptAt(p, 21, t0, end)).toBeNull()
    expect(nextAttemptAt(p, 21, t0, end + 5)).toBeNull()
    // A redelivery starts a new window.
    expect(nextAttemptAt(p, 21, end, end)).toBe(end + 36_000_000)
  })

  it('checks the policy once', () => {
    expect(() => checkRetryPolicy(policy({ scheduleMs: [] }))).toThrow(/retry schedule/)
    expect(() => checkRetryPolicy(policy({ jitter: 1 }))).toThrow(/jitter/)
    expect(() => checkRetryPolicy(policy({ retryForMs: 0 }))).toThrow(/retryFor/)
  })
})

describe('GlobalBackoff', () => {
  it('opens after the threshold of failures in a row, pauses double per failed probe up to the cap, and closes on one answer', () => {
    let t = 0
    const b = new GlobalBackoff(3, 1000, 5000, () => t)
    b.record(false); b.record(false)
    expect([b.open, b.waitMs()]).toEqual([false, 0])
    b.record(false)
    expect([b.open, b.waitMs()]).toEqual([true, 1000])
    // Failures of attempts already in flight do not lengthen a running pause.
    b.record(false)
    expect(b.waitMs()).toBe(1000)
    t += 1000
    b.record(false)
    expect(b.waitMs()).toBe(2000)
    t += 2000; b.record(false)
    expect(b.waitMs()).toBe(4000)
    t += 4000; b.record(false)
    expect(b.waitMs()).toBe(5000)
    t += 5000; b.record(true)
    expect([b.open, b.waitMs(), b.consecutiveFailures]).toEqual([false, 0, 0])
  })
})
