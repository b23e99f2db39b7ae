import { ossError } from '../errors.js'
import { atTurnEnd } from '../turn.js'
import type { CommitObserver } from './store.js'

/**
 * Group commit: writes queued in one event-loop turn run in one transaction, so they share one
 * fsync. Each caller resolves with its own write's result after the commit; if the transaction
 * fails, every caller of that batch is rejected with `OSS_CB_ERR_STORE_FAILED` and the next batch
 * starts afresh (so a store that is writable again recovers by itself).
 *
 * A write is `durable` (the default), `prompt` or `lazy`. A batch with a durable write commits
 * with a flush to disk before any caller resolves; a batch of prompt or lazy writes only (a
 * claim, a delivery outcome) commits without waiting for one: it survives a process crash (it is
 * in the OS's hands), and a later durable commit flushes it; only a machine crash can lose it,
 * and then the event is delivered again (at least once), never lost. A batch of lazy writes only
 * waits up to `lazyMs` for company, so a stream of delivery outcomes shares fewer transactions.
 */
export type WriteMode = 'durable' | 'prompt' | 'lazy'

/** `Op` is what one write is to the store: a function of a transaction's client, or a message to a writer thread. */
export class GroupCommit<Op> {
  private queue: Array<Pending<Op>> = []
  private scheduled = false
  private lazyTimer: NodeJS.Timeout | undefined
  private inFlight = 0
  private idle: Array<() => void> = []

  /**
   * @param runBatch runs `ops` in one transaction (flushed to disk when `durable`) and returns their results in order, or throws.
   * @param maxInFlight transactions that may run at once; later writes wait and join one batch.
   */
  constructor (
    private readonly runBatch: (ops: Op[], durable: boolean) => Promise<unknown[]>,
    private readonly maxInFlight: number,
    private readonly onCommit?: CommitObserver,
    private readonly lazyMs = 5
  ) {}

  /** Queues one write; resolves with its result after its transaction commits. */
  write<T> (op: Op, mode: WriteMode = 'durable'): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, mode, resolve: resolve as (v: unknown) => void, reject })
      this.schedule(mode === 'lazy')
    })
  }

  /** Resolves when nothing is queued or running. */
  async drain (): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return
    await new Promise<void>((resolve) => this.idle.push(resolve))
  }

  private schedule (lazy = false): void {
    if (this.inFlight >= this.maxInFlight) return
    if (lazy) {
      if (this.scheduled || this.lazyTimer !== undefined) return
      this.lazyTimer = setTimeout(() => { this.lazyTimer = undefined; void this.flush() }, this.lazyMs)
      return
    }
    if (this.lazyTimer !== undefined) { clearTimeout(this.lazyTimer); this.lazyTimer = undefined }
    if (this.scheduled) return
    this.scheduled = true
    // At the turn's end, not in a microtask: the batch collects the writes of every callback handled in this turn.
    atTurnEnd(() => { this.scheduled = false; void this.flush() })
  }

  private async flush (): Promise<void> {
    if (this.queue.length === 0 || this.inFlight >= this.maxInFlight) { this.checkIdle(); return }
    const batch = this.queue
    this.queue = []
    this.inFlight++
    const started = performance.now()
    const durable = batch.some((p) => p.mode === 'durable')
    try {
      const results = await this.runBatch(batch.map((p) => p.op), durable)
      this.onCommit?.({ writes: batch.length, durable, seconds: (performance.now() - started) / 1000 })
      batch.forEach((p, i) => p.resolve(results[i]))
    } catch (cause) {
      const error = cause instanceof Error ? cause : new Error(String(cause))
      this.onCommit?.({ writes: batch.length, durable, seconds: (performance.now() - started) / 1000, error })
      for (const p of batch) p.reject(ossError('STORE_FAILED', 'event store write failed', cause))
    } finally {
      this.inFlight--
      if (this.queue.length > 0) this.schedule(this.queue.every((p) => p.mode === 'lazy'))
      else this.checkIdle()
    }
  }

  private checkIdle (): void {
    if (this.queue.length > 0 || this.inFlight > 0) return
    const waiting = this.idle
    this.idle = []
    for (const resolve of waiting) resolve()
  }
}

interface Pending<Op> {
  op: Op
  mode: WriteMode
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}
