/**
 * The delivery worker: it takes events from the log (`events/`) to the app, signed per Standard
 * Webhooks, and records each outcome. It knows nothing of OSS signatures or of the server.
 *
 * How the server uses it:
 *
 * ```ts
 * const worker = createDeliveryWorker({ store, url: forwardUrl, secret: forwardSecret,
 *   concurrency, retryScheduleMs: parseDurationList(env.OSS_CALLBACK_RETRY_SCHEDULE),
 *   retryForMs: parseDuration(env.OSS_CALLBACK_RETRY_FOR), onAttempt, onError })
 * worker.start()                                           // background: claim due events, attempt, mark
 *
 * // In the callback handler, after `store.append` committed (see events/store.ts):
 * const result = await worker.attemptNow(event, {
 *   signal: context.signal, timeLeftMs: context.remainingMs - margin,
 *   answer: (r) => …                                       // the bytes to record for a resent callback
 * })
 * result.outcome === 'delivered'  → relay result.body (empty for a 204) to OSS
 * result.outcome === 'rejected'   → the coded 502 (the app's deliberate 4xx; final)
 * result.outcome === 'retry'      → `refuse`: coded 502/504 (result.reason); `accept`: the queued answer.
 *                                   Either way the event stays pending and the worker retries it.
 *
 * await worker.close()                                     // on shutdown: stop claiming, finish in-flight attempts
 * await store.close()                                      // after the worker: it waits for queued writes
 * ```
 *
 * Every attempt sends the same `webhook-id` (the event id) with a fresh `webhook-timestamp` and
 * signature. The answer is classified by `classify.ts`; a retry is scheduled by `schedule.ts`
 * (jittered, until the retry window is spent: then `dead`); while the app keeps failing, the
 * background worker backs off as a whole (`backoff.ts`). Each outcome is one store write; the
 * answer recorded for OSS is the one `attemptNow` gave (background attempts record none, as
 * OSS had its answer when the callback came).
 *
 * Metrics: `onAttempt` (attempts by outcome and reason, latency), `backoff` (open, failures in a
 * row), `inFlight`; the store's `stats()` and `onCommit` give the rest.
 *
 * Background attempts claim due events oldest first with a lease (`leaseMs`), a batch at a time,
 * and run at most `concurrency` at once. Time comes from the injected clock (tests use a fake one).
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import type { Dispatcher } from './undici.js'
import { invalidOption } from '../errors.js'
import type { AttemptRecord, EventState, EventStore, RecordedAnswer, StoredEvent } from '../events/store.js'
import { GlobalBackoff } from './backoff.js'
import { classifyAnswer, classifyFailure, type AttemptReason, type Classification } from './classify.js'
import { checkRetryPolicy, DEFAULT_JITTER, DEFAULT_RETRY_FOR_MS, DEFAULT_RETRY_SCHEDULE_MS, nextAttemptAt, type RetryPolicy } from './schedule.js'
import { createPool, createSender, SendFailure, type Sender } from './send.js'
import { createSigner } from './sign.js'

/** Time for the worker: `now` in ms since the epoch, and a sleep that ends early when `signal` aborts. */
export interface WorkerClock {
  now: () => number
  sleep: (ms: number, signal: AbortSignal) => Promise<void>
}

/** The real clock. */
export const systemClock: WorkerClock = {
  now: Date.now,
  sleep: async (ms, signal) => { await delay(ms, undefined, { signal }).catch(() => {}) }
}

/** Options of {@link createDeliveryWorker}. */
export interface DeliveryWorkerOptions {
  store: EventStore
  /** The app's URL, `http:` or `https:` (checked by the server's config). */
  url: string
  /** Standard Webhooks secret, `whsec_…`. */
  secret: string
  /** This instance's name in leases. Default: host, pid and a random suffix. */
  owner?: string
  /** Background attempts at once. Default: 16. */
  concurrency?: number
  /** Events claimed per claim. Default: 4 × concurrency. */
  claimBatch?: number
  /** How long a claim holds its events. Default: 30000. */
  leaseMs?: number
  /** One background attempt, in ms. Default: 10000. */
  timeoutMs?: number
  /** How often an idle worker looks for due events, in ms. Default: 1000. */
  pollIntervalMs?: number
  /** Delays between attempts; the last repeats. Default: 5s, 5m, 30m, 2h, 5h, 10h. */
  retryScheduleMs?: readonly number[]
  /** How long an event is retried before it is dead. Default: 3 days. */
  retryForMs?: number
  /** Each delay is drawn from ±this fraction of its nominal value. Default: 0.2. */
  jitter?: number
  /** Global back-off: failures in a row that slow the whole worker. Default: 5. */
  backoffThreshold?: number
  /** Global back-off: first pause, doubling per further failure. Default: 1000. */
  backoffInitialMs?: number
  /** Global back-off: longest pause. Default: 300000. */
  backoffMaxMs?: number
  /** Default: {@link systemClock}. */
  clock?: WorkerClock
  /** Uniform in [0, 1), for jitter. Default: `Math.random`. */
  random?: () => number
  /** The undici dispatcher for the app. Default: a keep-alive pool of its own (closed by `close`). */
  dispatcher?: Dispatcher
  /** Replaces the HTTP POST entirely. Default: undici through `dispatcher`. */
  send?: Sender
  /** Called after each attempt is recorded. Must not throw. */
  onAttempt?: (info: AttemptInfo) => void
  /** Called when the store fails under the worker (a claim or a mark). Must not throw. */
  onError?: (err: unknown) => void
}

/** The result of one attempt. */
export interface AttemptResult {
  outcome: Classification['outcome']
  reason: AttemptReason
  /** The app's status, or null when it did not answer. */
  status: number | null
  /** The app's reply bytes when delivered (empty for 204), else null. */
  body: Buffer | null
  /** A fixed phrase when not delivered. */
  error: string | null
  /** The event's state as recorded after this attempt; null when the record failed or the event had already moved on. */
  state: EventState | null
  /** When a retry is due, if one was scheduled. */
  nextAttemptAt: number | null
}

/** What {@link DeliveryWorkerOptions.onAttempt} gets. */
export interface AttemptInfo {
  eventId: string
  result: AttemptResult
  /** False for {@link DeliveryWorker.attemptNow}. */
  background: boolean
  seconds: number
}

/** Options of {@link DeliveryWorker.attemptNow}. */
export interface AttemptNowOptions {
  /** Aborts the attempt (the callback's deadline). */
  signal?: AbortSignal
  /** The callback's time left for this attempt, in ms. */
  timeLeftMs: number
  /** The answer to record for OSS (for a resent callback). Default: the app's bytes when delivered, else none. */
  answer?: (result: AttemptResult) => RecordedAnswer | undefined
}

export interface DeliveryWorker {
  /** Starts the background loop. */
  start: () => void
  /** Attempts one event now, within the callback's time left, and records the outcome. */
  attemptNow: (event: StoredEvent, options: AttemptNowOptions) => Promise<AttemptResult>
  /** The global back-off's state, for metrics. */
  readonly backoff: { readonly open: boolean, readonly consecutiveFailures: number }
  /** Background attempts running now. */
  readonly inFlight: number
  /** Stops claiming, waits for running attempts (background and `attemptNow`), then closes its own pool. */
  close: () => Promise<void>
}

function whole (name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min || value > max) throw invalidOption(`${name} must be a whole number from ${min} to ${max}, got ${String(value)}`)
  return value
}

/** Creates a delivery worker (stopped until `start`). Options are checked here, once. */
export function createDeliveryWorker (options: DeliveryWorkerOptions): DeliveryWorker {
  const { store } = options
  const url = new URL(options.url)
  const sign = createSigner(options.secret)
  const concurrency = whole('deliveryConcurrency', options.concurrency, 16, 1, 1000)
  const claimBatch = whole('deliveryClaimBatch', options.claimBatch, concurrency * 4, 1, 10_000)
  const leaseMs = whole('deliveryLeaseMs', options.leaseMs, 30_000, 1000, 86_400_000)
  const timeoutMs = whole('deliveryTimeoutMs', options.timeoutMs, 10_000, 1, 600_000)
  if (timeoutMs >= leaseMs) throw invalidOption('deliveryTimeoutMs must be shorter than deliveryLeaseMs')
  const pollIntervalMs = whole('deliveryPollIntervalMs', options.pollIntervalMs, 1000, 1, 3_600_000)
  const policy: RetryPolicy = checkRetryPolicy({
    scheduleMs: options.retryScheduleMs ?? DEFAULT_RETRY_SCHEDULE_MS,
    retryForMs: options.retryForMs ?? DEFAULT_RETRY_FOR_MS,
    jitter: options.jitter ?? DEFAULT_JITTER,
    random: options.random ?? Math.random
  })
  const clock = options.clock ?? systemClock
  const backoff = new GlobalBackoff(
    whole('deliveryBackoffThreshold', options.backoffThreshold, 5, 1, 1_000_000),
    whole('deliveryBackoffInitialMs', options.backoffInitialMs, 1000, 1, 86_400_000),
    whole('deliveryBackoffMaxMs', options.backoffMaxMs, 300_000, 1, 86_400_000),
    clock.now)
  // Room beyond `concurrency` so that attemptNow's callbacks never queue behind background attempts.
  const ownPool = options.send === undefined && options.dispatcher === undefined ? createPool(url, concurrency + 64) : undefined
  const send = options.send ?? createSender(options.dispatcher ?? ownPool as Dispatcher)
  const owner = options.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  const report = (err: unknown): void => { options.onError?.(err) }

  async function attempt (event: StoredEvent, budgetMs: number, signal: AbortSignal | undefined,
    answerFor: AttemptNowOptions['answer'], background: boolean, answered?: () => void): Promise<AttemptResult> {
    const at = clock.now()
    const started = performance.now()
    const seconds = Math.floor(at / 1000)
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'oss-callback-delivery',
      'webhook-id': event.id,
      'webhook-timestamp': String(seconds),
      'webhook-signature': sign(event.id, seconds, event.envelope)
    }
    let classification: Classification
    let status: number | null = null
    let body: Buffer | null = null
    try {
      const answer = await send({ url, headers, body: event.envelope, timeoutMs: budgetMs, signal })
      status = answer.status
      classification = classifyAnswer(answer.status, answer.body, answer.overLimit)
      if (classification.outcome === 'delivered') body = answer.body
    } catch (err) {
      classification = err instanceof SendFailure ? classifyFailure(err.kind, err.detail) : classifyFailure('unreachable')
    }
    const latencyMs = performance.now() - started
    answered?.()
    // A cut-short attempt says nothing about the app's health.
    if (classification.reason !== 'aborted') backoff.record(classification.outcome !== 'retry')
    const result: AttemptResult = { outcome: classification.outcome, reason: classification.reason, status, body, error: classification.error, state: null, nextAttemptAt: null }
    const record: AttemptRecord = { at, status, latencyMs, outcome: classification.outcome, error: classification.error }
    const answer = answerFor !== undefined ? answerFor(result) : body !== null ? { status: 200, body } : undefined
    try {
      if (classification.outcome !== 'retry') {
        if (await store.finish(event.id, classification.outcome, record, answer)) result.state = classification.outcome
      } else {
        const next = nextAttemptAt(policy, event.attempts + 1, event.retrySince, clock.now())
        if (next === null) {
          if (await store.finish(event.id, 'dead', record, answer)) result.state = 'dead'
        } else if (await store.reschedule(event.id, record, next, answer)) {
          result.state = 'pending'
          result.nextAttemptAt = next
        }
      }
    } catch (err) {
      // The event stays pending (or leased): it is retried when due, so nothing is lost.
      report(err)
    }
    options.onAttempt?.({ eventId: event.id, result, background, seconds: latencyMs / 1000 })
    return result
  }

  // The background loop.
  const stopping = new AbortController()
  const running = new Set<object>()
  const recording = new Set<Promise<unknown>>()
  // The background attempts among them (attemptNow's are the callbacks').
  const launched = new Set<Promise<unknown>>()
  const buffer: StoredEvent[] = []
  let slotWaiter: (() => void) | undefined
  let loop: Promise<void> | undefined
  const slotFreed = (): Promise<void> => new Promise((resolve) => { slotWaiter = resolve })
  const wake = (): void => { const w = slotWaiter; slotWaiter = undefined; w?.() }

  // A slot is the app's: it frees when the app has answered, while the outcome is still being
  // recorded (the event stays leased until then, so no claim takes it again meanwhile).
  function launch (event: StoredEvent): void {
    const slot = {}
    running.add(slot)
    const free = (): void => { if (running.delete(slot)) wake() }
    // No answer is recorded: OSS got its answer when the callback came.
    const p = attempt(event, timeoutMs, undefined, () => undefined, true, free).catch(report).finally(() => { free(); recording.delete(p); launched.delete(p) })
    recording.add(p)
    launched.add(p)
  }

  async function run (): Promise<void> {
    const signal = stopping.signal
    // The next claim, made while the buffer ran low, so that a backlog's slots never wait for a claim.
    let ahead: Promise<StoredEvent[]> | undefined
    while (!signal.aborted) {
      const limit = backoff.open ? 1 : concurrency
      if (running.size >= limit) { await slotFreed(); continue }
      const wait = backoff.waitMs()
      if (wait > 0) { await clock.sleep(wait, signal); continue }
      if (buffer.length === 0) {
        let claimed: StoredEvent[]
        try {
          claimed = await (ahead ?? store.claimDue(owner, backoff.open ? 1 : claimBatch, leaseMs))
        } catch (err) {
          report(err)
          await clock.sleep(pollIntervalMs, signal)
          continue
        } finally {
          ahead = undefined
        }
        if (claimed.length === 0) {
          if (running.size > 0) await slotFreed()
          // Idle only once its own outcomes are recorded (no slot is taken, so the app has answered them all):
          // an event rescheduled meanwhile may already be due.
          else if (launched.size > 0) await Promise.allSettled(launched)
          else await clock.sleep(pollIntervalMs, signal)
          continue
        }
        buffer.push(...claimed)
      }
      const event = buffer.shift() as StoredEvent
      // Too little lease left to finish: leave it, it comes due again when the lease ends.
      if (event.leaseExpiresAt !== null && clock.now() + timeoutMs > event.leaseExpiresAt) continue
      launch(event)
      if (ahead === undefined && !backoff.open && buffer.length > 0 && buffer.length <= concurrency) {
        ahead = store.claimDue(owner, claimBatch, leaseMs)
        // Its failure is reported where it is awaited.
        ahead.catch(() => {})
      }
    }
  }

  return {
    start () {
      if (loop !== undefined || stopping.signal.aborted) return
      loop = run().catch(report)
    },
    async attemptNow (event, { signal, timeLeftMs, answer }) {
      const budgetMs = Math.min(timeoutMs, Math.floor(timeLeftMs))
      if (budgetMs <= 0) {
        const result: AttemptResult = { outcome: 'retry', reason: 'timeout', status: null, body: null, error: 'no time left to attempt', state: event.state, nextAttemptAt: event.nextAttemptAt }
        return result
      }
      // After close began (a callback still in its handler as the server stops), the pool and the store
      // are going: the event stays pending and is delivered after the restart.
      if (stopping.signal.aborted) {
        const { outcome, reason, error } = classifyFailure('aborted')
        return { outcome, reason, status: null, body: null, error, state: event.state, nextAttemptAt: event.nextAttemptAt }
      }
      const p = attempt(event, budgetMs, signal, answer, false)
      recording.add(p)
      try {
        return await p
      } finally {
        recording.delete(p)
      }
    },
    get backoff () { return { open: backoff.open, consecutiveFailures: backoff.consecutiveFailures } },
    get inFlight () { return running.size },
    async close () {
      stopping.abort()
      wake()
      await loop
      await Promise.all([...recording])
      await ownPool?.destroy()
    }
  }
}
