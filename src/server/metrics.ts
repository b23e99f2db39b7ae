import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { listErrorCodes, type OssCallbackError } from '../errors.js'
import type { KeyProvider } from '../keys/provider.js'
import type { AttemptInfo } from '../delivery/worker.js'
import type { SweepInfo } from '../reconcile/schedule.js'
import type { CommitObserver, EventStore } from '../events/store.js'
import { FORWARD_OUTCOMES, type ForwardOutcome } from './forward.js'

/** Every metric the server exports besides Node's process metrics, for docs and tests. */
export const METRIC_NAMES = Object.freeze({
  callbacks: 'oss_callback_callbacks_total',
  verificationDuration: 'oss_callback_verification_duration_seconds',
  keyFetches: 'oss_callback_key_fetches_total',
  keyLookups: 'oss_callback_key_lookups_total',
  forwards: 'oss_callback_forwards_total',
  forwardDuration: 'oss_callback_forward_duration_seconds',
  deadlineExceeded: 'oss_callback_deadline_exceeded_total',
  verifierInfo: 'oss_callback_signature_verifier_info',
  eventsPending: 'oss_callback_events_pending',
  oldestPendingAge: 'oss_callback_events_oldest_pending_age_seconds',
  eventsDead: 'oss_callback_events_dead',
  deliveryAttempts: 'oss_callback_delivery_attempts_total',
  storeWriteDuration: 'oss_callback_store_write_duration_seconds',
  reconcileListed: 'oss_callback_reconcile_objects_listed_total',
  reconcileUnconfirmed: 'oss_callback_reconcile_unconfirmed_total',
  reconcileDuration: 'oss_callback_reconcile_sweep_duration_seconds',
  reconcileLastSuccess: 'oss_callback_reconcile_last_success_timestamp_seconds',
  reconcileFailures: 'oss_callback_reconcile_failures_total'
} as const)

/** The `outcome` label of a callback answered 200. */
export const OK_OUTCOME = 'ok'

const DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/** Options of {@link createServerMetrics}. */
export interface ServerMetricsOptions {
  /** The key provider whose counters are exported. */
  keys: KeyProvider
  /** Which signature implementation passed the self-test. */
  verifierName: string
  /** Export forward metrics (forward mode is on). Default: false. */
  forward?: boolean
  /** Add Node's process metrics (CPU, memory, event loop, GC). Default: true. */
  processMetrics?: boolean
  /** Export the event log's and the delivery worker's metrics (the durable gateway is on). Default: false. */
  events?: boolean
  /** Export the reconciliation schedule's metrics (it is on). Default: false. */
  reconcile?: boolean
}

/** The standalone server's metrics, in a registry of their own. */
export interface ServerMetrics {
  /** The server's own registry (never prom-client's global one). */
  readonly registry: Registry
  /** The `Content-Type` of {@link ServerMetrics.scrape}'s text. */
  readonly contentType: string
  /** Counts a callback answered 200. */
  callbackSucceeded (): void
  /** Counts a refused or failed callback by its code. */
  callbackFailed (error: OssCallbackError): void
  /** Records one forward. */
  forwardFinished (outcome: ForwardOutcome, seconds: number): void
  /** Records how long one verification took, passed or failed. */
  verificationObserved (seconds: number): void
  /** Every metric in the Prometheus text format: the server's, then the process's. */
  scrape (): Promise<string>
  /** Records one group-commit transaction of the event store. */
  storeCommitted: CommitObserver
  /** Records one delivery attempt. */
  deliveryAttempted (info: AttemptInfo): void
  /** Reads pending and dead counts from `store` when scraped. */
  watchEvents (store: EventStore): void
  /** Records one completed reconciliation sweep. */
  reconcileSwept (info: SweepInfo): void
  /** Counts one failed reconciliation sweep. */
  reconcileFailed (): void
}

// Process metrics describe the process, not an app: one collector per process, in a
// registry of its own, so several apps (and test files) never register them twice.
let processRegistry: Registry | undefined
function processMetricsRegistry (): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/** Creates the metrics of one server. */
export function createServerMetrics (options: ServerMetricsOptions): ServerMetrics {
  const registry = new Registry()
  const stats = options.keys.stats

  // Successes are the hot path: a plain number, handed to the counter only when scraped.
  let okCount = 0
  let okReported = 0
  const callbacks = new Counter({
    name: METRIC_NAMES.callbacks,
    help: 'Callbacks answered, by outcome: "ok" (200) or the OSS_CB_ERR_* code of the error reply.',
    labelNames: ['outcome'],
    registers: [registry],
    collect () {
      this.inc({ outcome: OK_OUTCOME }, okCount - okReported)
      okReported = okCount
    }
  })
  const verification = new Histogram({
    name: METRIC_NAMES.verificationDuration,
    help: 'Time to verify one callback (headers, key lookup or fetch, RSA check, body parse), in seconds, whatever the result.',
    buckets: DURATION_BUCKETS_S,
    registers: [registry]
  })
  const deadline = new Counter({
    name: METRIC_NAMES.deadlineExceeded,
    help: 'Callbacks whose deadline passed before a reply was ready (OSS_CB_ERR_DEADLINE_EXCEEDED).',
    registers: [registry]
  })
  new Counter({
    name: METRIC_NAMES.keyFetches,
    help: 'Public key fetches, by result: "ok", "failed" (including timeouts), or "backoff" (refused without fetching after a recent failure).',
    labelNames: ['result'],
    registers: [registry],
    collect () {
      this.reset()
      this.inc({ result: 'ok' }, stats.fetches - stats.fetchFailures)
      this.inc({ result: 'failed' }, stats.fetchFailures)
      this.inc({ result: 'backoff' }, stats.backoffRejections)
    }
  })
  new Counter({
    name: METRIC_NAMES.keyLookups,
    help: 'Public key lookups, by result: "pinned" (shipped key), "cache_hit" or "cache_miss" (a fetch follows, shared by concurrent callbacks).',
    labelNames: ['result'],
    registers: [registry],
    collect () {
      this.reset()
      this.inc({ result: 'pinned' }, stats.pinnedHits)
      this.inc({ result: 'cache_hit' }, stats.cacheHits)
      this.inc({ result: 'cache_miss' }, stats.cacheMisses)
    }
  })
  new Gauge({
    name: METRIC_NAMES.verifierInfo,
    help: 'Always 1; the label says which RSA implementation passed the start-up self-test.',
    labelNames: ['verifier'],
    registers: [registry]
  }).set({ verifier: options.verifierName }, 1)

  const forwardCounters = new Map<ForwardOutcome, { inc: (value?: number) => void }>()
  let forwardDuration: Histogram | undefined
  if (options.forward === true) {
    const forwards = new Counter({
      name: METRIC_NAMES.forwards,
      help: 'Forwards to the upstream app, by outcome: ok, no_content (204), bad_status, bad_reply (not JSON), too_large, unreachable, timeout, deadline.',
      labelNames: ['outcome'],
      registers: [registry]
    })
    for (const outcome of FORWARD_OUTCOMES) {
      const counter = forwards.labels(outcome)
      counter.inc(0)
      forwardCounters.set(outcome, counter)
    }
    forwardDuration = new Histogram({
      name: METRIC_NAMES.forwardDuration,
      help: 'Time from sending a forward to the upstream\'s complete answer (or the failure), in seconds.',
      buckets: DURATION_BUCKETS_S,
      registers: [registry]
    })
  }

  let watched: EventStore | undefined
  let storeWrite: Histogram | undefined
  let attempts: Counter | undefined
  if (options.events === true) {
    // One stats query per scrape, shared by the three gauges.
    let statsOfScrape: ReturnType<EventStore['stats']> | undefined
    const statsNow = (): ReturnType<EventStore['stats']> | undefined => {
      if (watched === undefined) return undefined
      statsOfScrape ??= watched.stats().finally(() => { setImmediate(() => { statsOfScrape = undefined }) })
      return statsOfScrape
    }
    new Gauge({
      name: METRIC_NAMES.eventsPending,
      help: 'Events recorded and not yet delivered, rejected or dead.',
      registers: [registry],
      async collect () { const s = await statsNow()?.catch(() => undefined); if (s !== undefined) this.set(s.counts.pending) }
    })
    new Gauge({
      name: METRIC_NAMES.oldestPendingAge,
      help: 'Age of the oldest pending event, in seconds; 0 when none is pending.',
      registers: [registry],
      async collect () {
        const s = await statsNow()?.catch(() => undefined)
        if (s !== undefined) this.set(s.oldestPendingAt === null ? 0 : Math.max(0, (Date.now() - s.oldestPendingAt) / 1000))
      }
    })
    new Gauge({
      name: METRIC_NAMES.eventsDead,
      help: 'Events whose retry window is spent, kept until redelivered or purged (oss-callback events redeliver).',
      registers: [registry],
      async collect () { const s = await statsNow()?.catch(() => undefined); if (s !== undefined) this.set(s.counts.dead) }
    })
    attempts = new Counter({
      name: METRIC_NAMES.deliveryAttempts,
      help: 'Delivery attempts to the app, by outcome (delivered, rejected, retry), reason, and whether made in the background.',
      labelNames: ['outcome', 'reason', 'background'],
      registers: [registry]
    })
    storeWrite = new Histogram({
      name: METRIC_NAMES.storeWriteDuration,
      help: 'Time of one group-commit transaction of the event store (every write of one event-loop turn, with its fsync), in seconds.',
      buckets: DURATION_BUCKETS_S,
      registers: [registry]
    })
  }

  let reconcile: { listed: Counter, unconfirmed: Counter, duration: Histogram, lastSuccess: Gauge, failures: Counter } | undefined
  if (options.reconcile === true) {
    reconcile = {
      listed: new Counter({
        name: METRIC_NAMES.reconcileListed,
        help: 'Objects listed under the prefixes by reconciliation sweeps.',
        registers: [registry]
      }),
      unconfirmed: new Counter({
        name: METRIC_NAMES.reconcileUnconfirmed,
        help: 'Objects with no recorded callback found by reconciliation sweeps, each recorded as an oss.object.unconfirmed event.',
        registers: [registry]
      }),
      duration: new Histogram({
        name: METRIC_NAMES.reconcileDuration,
        help: 'Time of one completed reconciliation sweep, in seconds.',
        buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
        registers: [registry]
      }),
      lastSuccess: new Gauge({
        name: METRIC_NAMES.reconcileLastSuccess,
        help: 'When the last reconciliation sweep completed, in seconds since the epoch; 0 before the first.',
        registers: [registry]
      }),
      failures: new Counter({
        name: METRIC_NAMES.reconcileFailures,
        help: 'Reconciliation sweeps that failed (tried again at the next turn).',
        registers: [registry]
      })
    }
    reconcile.lastSuccess.set(0)
  }

  // Bound once, so that counting a failure or timing a verification builds no label object per request.
  callbacks.inc({ outcome: OK_OUTCOME }, 0)
  const byCode = new Map<string, { inc: (value?: number) => void }>()
  for (const { code } of listErrorCodes()) byCode.set(code, callbacks.labels(code))
  const observeVerification = verification.labels().observe

  const processRegistryIfAny = options.processMetrics === false ? undefined : processMetricsRegistry()

  return {
    registry,
    contentType: registry.contentType,
    callbackSucceeded: () => { okCount++ },
    callbackFailed: (error) => {
      const counter = byCode.get(error.code)
      if (counter !== undefined) counter.inc()
      else callbacks.inc({ outcome: error.code })
      if (error.code === 'OSS_CB_ERR_DEADLINE_EXCEEDED') deadline.inc()
    },
    forwardFinished: (outcome, seconds) => {
      forwardCounters.get(outcome)?.inc()
      forwardDuration?.observe(seconds)
    },
    verificationObserved: (seconds) => { observeVerification(seconds) },
    storeCommitted: ({ seconds }) => { storeWrite?.observe(seconds) },
    deliveryAttempted: ({ result, background }) => {
      attempts?.inc({ outcome: result.outcome, reason: result.reason, background: background ? 'true' : 'false' })
    },
    watchEvents: (store) => { watched = store },
    reconcileSwept: (info) => {
      if (reconcile === undefined) return
      reconcile.listed.inc(info.listed)
      reconcile.unconfirmed.inc(info.new)
      reconcile.duration.observe(info.seconds)
      reconcile.lastSuccess.set(info.finishedAt / 1000)
    },
    reconcileFailed: () => { reconcile?.failures.inc() },
    scrape: async () => {
      const own = await registry.metrics()
      return processRegistryIfAny === undefined ? own : own + await processRegistryIfAny.metrics()
    }
  }
}
