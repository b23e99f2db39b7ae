import type { EventStore } from './store.js'

/** Options of {@link deleteExpiredEvents}. */
export interface RetentionOptions {
  /** Delivered and rejected events are kept this long after their last change, in ms. */
  retentionMs: number
  /** Events per transaction. Default: 500. */
  batchSize?: number
  /** Default: `Date.now`. */
  now?: () => number
  /** Stops between batches (shutdown). */
  signal?: AbortSignal
}

/**
 * One retention pass: deletes delivered and rejected events older than the retention, one small
 * transaction at a time, yielding to the event loop between batches so callbacks are never held
 * up behind a long delete. Dead events are kept until redelivered or purged by hand.
 * Returns how many were deleted.
 */
export async function deleteExpiredEvents (store: EventStore, options: RetentionOptions): Promise<number> {
  const batchSize = options.batchSize ?? 500
  const before = (options.now ?? Date.now)() - options.retentionMs
  let total = 0
  for (;;) {
    if (options.signal?.aborted === true) return total
    const deleted = await store.deleteExpired(before, batchSize)
    total += deleted
    if (deleted < batchSize) return total
    await new Promise((resolve) => setImmediate(resolve))
  }
}
