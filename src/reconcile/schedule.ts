import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { invalidOption } from '../errors.js'
import type { EventStore } from '../events/store.js'
import { openBucket, type BucketReader, type OssCredentials } from './oss.js'
import { checkWindow, DEFAULT_SETTLE_MS, sweep, type SweepReport } from './sweep.js'

/** Default of `OSS_CALLBACK_RECONCILE_WINDOW`: how far back each scheduled sweep looks. */
export const DEFAULT_WINDOW_MS = 24 * 3_600_000

/** Time for the schedule: `now`, and a sleep that ends early when `signal` aborts. */
export interface ScheduleClock {
  now: () => number
  sleep: (ms: number, signal: AbortSignal) => Promise<void>
}

const systemClock: ScheduleClock = {
  now: Date.now,
  sleep: async (ms, signal) => { await delay(ms, undefined, { signal }).catch(() => {}) }
}

/** The part of a pino logger the schedule uses. */
export interface ScheduleLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

/** One completed sweep, for metrics. */
export interface SweepInfo extends SweepReport {
  /** How long it took, in seconds. */
  seconds: number
  /** When it finished, ms since the epoch (the last successful sweep time). */
  finishedAt: number
}

/** Options of {@link startReconcileSchedule}. */
export interface ReconcileScheduleOptions {
  store: EventStore
  /** Time between the end of one sweep and the start of the next, ms (`OSS_CALLBACK_RECONCILE_EVERY`). */
  everyMs: number
  /** Each sweep looks this far back, ms (`OSS_CALLBACK_RECONCILE_WINDOW`). Default: 24 h. */
  windowMs?: number
  /** Objects younger than this are left alone, ms (`OSS_CALLBACK_RECONCILE_SETTLE`). Default: 2 min. */
  settleMs?: number
  /** The log's retention, ms (`OSS_CALLBACK_RETENTION`): the window must not reach further back. */
  retentionMs?: number
  /** `OSS_CALLBACK_RECONCILE_PREFIXES`, split on commas. */
  prefixes: readonly string[]
  /** `OSS_BUCKET`. */
  bucket: string
  /** `OSS_ENDPOINT`. */
  endpoint?: string
  /** `OSS_REGION`. */
  region?: string
  /** From `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET`, `OSS_SESSION_TOKEN`. */
  credentials: OssCredentials
  /** Default: the system clock. */
  clock?: ScheduleClock
  logger?: ScheduleLogger
  /** After each completed sweep (objects listed, unconfirmed found, duration, last success). Must not throw. */
  onSweep?: (info: SweepInfo) => void
  /** When a sweep fails (it is tried again at the next turn). Must not throw. */
  onError?: (err: unknown) => void
  /** When another instance held the sweep lock, so this turn did nothing. Must not throw. */
  onLockBusy?: () => void
  /** Replaces the ali-oss client (tests). */
  reader?: BucketReader
  /** Keys per listing page. Default: 1000. */
  pageSize?: number
}

/**
 * Sweeps on a schedule: one sweep at start, then one `everyMs` after each ends. With PostgreSQL,
 * one instance sweeps at a time (the store's sweep lock); the others skip that turn. Returns a
 * function that stops the schedule, ending a sweep in progress at its next page, and resolves
 * when it has stopped.
 */
export function startReconcileSchedule (options: ReconcileScheduleOptions): () => Promise<void> {
  const { store, everyMs, bucket } = options
  const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS
  const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS
  const clock = options.clock ?? systemClock
  for (const [name, v] of [['everyMs', everyMs], ['windowMs', windowMs], ['settleMs', settleMs]] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) throw invalidOption(`reconciliation ${name} must be a whole number of ms above zero`)
  }
  if (settleMs >= windowMs) throw invalidOption('the reconciliation settle time must be shorter than its window')
  if (options.retentionMs !== undefined && windowMs > options.retentionMs) {
    throw invalidOption('the reconciliation window must not reach further back than the event log\'s retention (OSS_CALLBACK_RETENTION)')
  }
  if (options.prefixes.length === 0) throw invalidOption('reconciliation needs at least one prefix (OSS_CALLBACK_RECONCILE_PREFIXES)')
  const reader = options.reader ?? openBucket({
    bucket,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.region === undefined ? {} : { region: options.region }),
    credentials: options.credentials
  })
  const controller = new AbortController()
  const { signal } = controller

  const turn = async (): Promise<void> => {
    const startedAt = clock.now()
    const started = performance.now()
    const since = startedAt - windowMs
    checkWindow(since, startedAt, options.retentionMs)
    const outcome = await store.withSweepLock(async () => await sweep({
      store,
      reader,
      bucket,
      prefixes: options.prefixes,
      since,
      settleMs,
      now: clock.now,
      signal,
      ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize })
    }))
    if (!outcome.ran) {
      options.logger?.info({ bucket }, 'reconciliation: another instance is sweeping; skipped this turn')
      options.onLockBusy?.()
      return
    }
    const finishedAt = clock.now()
    const report = outcome.value
    options.onSweep?.({ ...report, seconds: (performance.now() - started) / 1000, finishedAt })
    options.logger?.info({ bucket, listed: report.listed, matched: report.matched, new: report.new, skipped: report.skipped }, 'reconciliation sweep done')
    if (report.unmatchable > 0) {
      options.logger?.warn({ bucket, events: report.unmatchable }, 'reconciliation: callback events name no bucket or object and cannot be matched; put ${bucket}, ${object} and ${etag} in every callback body')
    }
  }

  const loop = (async () => {
    while (!signal.aborted) {
      try {
        await turn()
      } catch (err) {
        if (signal.aborted) break
        options.logger?.error({ bucket, err }, 'reconciliation sweep failed')
        options.onError?.(err)
      }
      if (signal.aborted) break
      await clock.sleep(everyMs, signal)
    }
  })()

  return async () => {
    controller.abort()
    await loop
  }
}
