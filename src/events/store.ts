/**
 * The durable event log of the gateway: one {@link EventStore} interface, two implementations
 * (`sqlite.ts` with better-sqlite3, `postgres.ts` with pg), opened by URL with `openEventStore`
 * (`open.ts`). It knows nothing of HTTP or of OSS signatures.
 *
 * How the server uses it (the path of one callback):
 *
 * ```ts
 * const store = await openEventStore(config.databaseUrl)          // migrations run here; refusals throw OSS_CB_ERR_STORE_UNUSABLE
 * const id = eventId({ path, query, body: callback.raw, requestId: callback.requestId })
 * const { event, created } = await store.append({                 // group-committed: one transaction per event-loop turn
 *   id, type: 'oss.callback.verified', bucket, objectKey, etag,
 *   envelope: JSON.stringify(forwardEnvelope(callback, receivedAt)),
 *   firstAttemptAt: now + timeLeftMs                               // the background worker leaves it alone meanwhile
 * })                                                              // rejects with OSS_CB_ERR_STORE_FAILED: answer 503
 * if (!created && event.answer !== null) reply(event.answer)      // a resent callback gets the recorded answer
 * else await worker.attemptNow(event, { signal, timeLeftMs, answer })   // delivery/worker.ts marks the outcome
 * ```
 *
 * Every state change is one write (one transaction, the event row and its attempt row together):
 * `pending` → `delivered` | `rejected` | `dead` through {@link EventStore.finish}; a failed attempt
 * that is retried later through {@link EventStore.reschedule}; `dead` (or `rejected`) → `pending`
 * through {@link EventStore.redeliver}. Writes made in one event-loop turn share one transaction
 * (group commit), so each costs a share of one fsync; all callers of a failed batch are rejected
 * with `OSS_CB_ERR_STORE_FAILED`, and the next batch tries again (so the store recovers by itself).
 *
 * Times are milliseconds since the epoch, from the clock given at open (tests use a fake one).
 * The `events` CLI pages through {@link EventStore.list} (keyset paging, never the whole log),
 * reads one event with {@link EventStore.show}, and uses `stats`, `redeliver` and `purge`.
 */
import { createHash } from 'node:crypto'

/** The kinds of events in the log. */
export type EventType = 'oss.callback.verified' | 'oss.object.unconfirmed'

/** Where an event is in its life. */
export type EventState = 'pending' | 'delivered' | 'rejected' | 'dead'

/** Every {@link EventState}, in the order stats and the CLI show them. */
export const EVENT_STATES: readonly EventState[] = Object.freeze(['pending', 'delivered', 'rejected', 'dead'] as const)

/** What OSS was (or will be) answered for an event, kept so a resent callback gets the same answer. */
export interface RecordedAnswer {
  status: number
  body: Buffer
}

/** An event to append. */
export interface NewEvent {
  /** From {@link eventId}: the same signed bytes and request id give the same id. */
  id: string
  type: EventType
  bucket: string | null
  objectKey: string | null
  etag: string | null
  /** The JSON text POSTed to the app on every attempt (the forward envelope), stored byte for byte. */
  envelope: string
  /**
   * When the background worker may first attempt it, ms since the epoch. The server sets it past
   * the callback's own first attempt, so the two never race; after a crash, the worker picks it up then.
   * Default: now.
   */
  firstAttemptAt?: number
}

/** An event as stored: what was appended, and where it is in its life. */
export interface StoredEvent extends Omit<NewEvent, 'firstAttemptAt'> {
  state: EventState
  /** Attempts made so far. */
  attempts: number
  /** When it is next due (while `pending`); a leased event is due again when its lease expires. */
  nextAttemptAt: number
  /** Start of the current retry window: the first append, or the last redelivery. */
  retrySince: number
  leaseOwner: string | null
  leaseExpiresAt: number | null
  answer: RecordedAnswer | null
  /** The last attempt's error, for the log and `events show`. */
  lastError: string | null
  createdAt: number
  updatedAt: number
}

/** The row of an event in a listing: everything but the envelope and the recorded answer's bytes. */
export type EventSummary = Omit<StoredEvent, 'envelope' | 'answer'> & { answerStatus: number | null }

/** How one attempt ended. `retry` is a failure that will be tried again (or not, if the window is spent). */
export type AttemptOutcome = 'delivered' | 'rejected' | 'retry'

/** One delivery attempt, as recorded. */
export interface AttemptRecord {
  /** When the attempt started, ms since the epoch. */
  at: number
  /** The app's HTTP status, or null when none came (refused, reset, timeout). */
  status: number | null
  latencyMs: number
  outcome: AttemptOutcome
  /** Why it failed, a fixed phrase (never the app's body). */
  error: string | null
}

/** A recorded attempt with its number (1 for the first). */
export interface StoredAttempt extends AttemptRecord {
  n: number
}

/** The final outcome of a pending event. */
export type FinalState = 'delivered' | 'rejected' | 'dead'

/** Filter and page of {@link EventStore.list}. */
export interface ListQuery {
  state?: EventState
  /** Only events created at or after this time. */
  since?: number
  /** Only events whose object key starts with this. */
  objectPrefix?: string
  /** Rows per page; at most 1000. Default: 100. */
  limit?: number
  /** The `next` cursor of the previous page. */
  after?: string
}

/** One page of a listing, oldest first. */
export interface ListPage {
  events: EventSummary[]
  /** Give as `after` for the next page; null on the last page. */
  next: string | null
}

/** Counts for `events stats` and the metrics. */
export interface EventStats {
  counts: Record<EventState, number>
  /** Creation time of the oldest pending event, or null when none is pending. */
  oldestPendingAt: number | null
}

/** Which events {@link EventStore.redeliver} sets pending again. */
export type RedeliverTarget = { ids: string[] } | { state: 'dead' | 'rejected', since?: number }

/** An event as {@link EventStore.findByObjects} reports it: enough to match an object. */
export interface ObjectEventRef {
  objectKey: string
  etag: string | null
  type: EventType
  state: EventState
}

/** The result of {@link EventStore.append}. */
export interface AppendResult {
  event: StoredEvent
  /** False when an event with this id was already in the log (a resent callback). */
  created: boolean
}

/** Called after each group-commit transaction, for metrics and tests. Must not throw. */
export type CommitObserver = (info: { writes: number, durable: boolean, seconds: number, error?: Error }) => void

/** The durable event log. Every method may reject with `OSS_CB_ERR_STORE_FAILED`. */
export interface EventStore {
  /** `sqlite` or `postgres`. */
  readonly dialect: 'sqlite' | 'postgres'

  /** Appends an event, or finds the one with the same id. Resolves after the commit. */
  append (event: NewEvent): Promise<AppendResult>

  /** One event, or null. */
  get (id: string): Promise<StoredEvent | null>

  /**
   * Claims up to `limit` due pending events for `owner`, oldest due first, for `leaseMs`:
   * no other claim returns them until the lease expires (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
   */
  claimDue (owner: string, limit: number, leaseMs: number): Promise<StoredEvent[]>

  /**
   * Ends a pending event: records the attempt (if any) and the final state, clears the lease, and
   * records the answer for OSS when given. One write. False when the event was not pending.
   */
  finish (id: string, state: FinalState, attempt: AttemptRecord | null, answer?: RecordedAnswer): Promise<boolean>

  /**
   * Records a failed attempt and sets when the event is next due, clearing the lease; records the
   * answer for OSS when given. One write. False when the event was not pending.
   */
  reschedule (id: string, attempt: AttemptRecord, nextAttemptAt: number, answer?: RecordedAnswer): Promise<boolean>

  /** Sets the targeted events pending again, due now, with a fresh retry window. Returns how many. */
  redeliver (target: RedeliverTarget): Promise<number>

  /** Events matching the query, oldest first, one page. */
  list (query?: ListQuery): Promise<ListPage>

  /** One event with every attempt, or null. */
  show (id: string): Promise<{ event: StoredEvent, attempts: StoredAttempt[] } | null>

  /** Events recorded for one object, newest first (for reconciliation). */
  findByObject (bucket: string, objectKey: string, limit?: number): Promise<StoredEvent[]>

  /**
   * What the log knows of many objects of one bucket in one query (reconciliation matches a
   * listing page at a time): one row per event naming one of `objectKeys` (at most 1000).
   */
  findByObjects (bucket: string, objectKeys: readonly string[]): Promise<ObjectEventRef[]>

  /**
   * Events of type `oss.callback.verified` created at or after `since` that name no bucket or no
   * object (their callback body lacked `${bucket}` or `${object}`): reconciliation cannot match them.
   */
  countWithoutObject (since: number): Promise<number>

  /**
   * Runs `fn` unless another sweep holds the sweep lock: with PostgreSQL a session advisory lock
   * (`pg_try_advisory_lock`), so one instance sweeps at a time however many share the log; with
   * SQLite (one process) an in-process flag. Resolves `{ ran: false }` when the lock was held.
   */
  withSweepLock<T> (fn: () => Promise<T>): Promise<{ ran: true, value: T } | { ran: false }>

  stats (): Promise<EventStats>

  /**
   * Deletes at most `batchSize` events in `state` last changed before `before` (with their
   * attempts), in one short transaction. Returns how many; call again while it returns `batchSize`.
   */
  purge (state: EventState, before: number, batchSize?: number): Promise<number>

  /**
   * Retention: one batch of delivered and rejected events last changed before `before`; dead
   * events are kept. Returns how many were deleted; call again while it returns `batchSize`.
   */
  deleteExpired (before: number, batchSize?: number): Promise<number>

  /**
   * Commits (durably) a write that needs free space and takes it back: resolves when the store can
   * record events now, rejects with `OSS_CB_ERR_STORE_FAILED` otherwise (for `/readyz`).
   */
  probe (): Promise<void>

  /** Waits for queued writes, then closes the connection(s). */
  close (): Promise<void>
}

/** What {@link eventId} derives an id from: the bytes OSS signed, and the request id it sent. */
export interface EventIdSource {
  /** The path OSS signed, still percent-encoded. */
  path: string
  /** The raw query, without `?`; `''` when none. */
  query: string
  body: Uint8Array
  /** `x-oss-request-id`, or null/undefined when absent. */
  requestId: string | null | undefined
}

/**
 * The event id of a callback: `evt_` and 32 hex digits of SHA-256 over the signed bytes and
 * the request id, each length-prefixed so no two different inputs share one encoding. A resent
 * callback maps to the same event; two uploads with identical bodies differ by request id.
 */
export function eventId (source: EventIdSource): string {
  const hash = createHash('sha256')
  const part = (bytes: Uint8Array | null): void => {
    const len = Buffer.alloc(8)
    len.writeBigInt64BE(bytes === null ? -1n : BigInt(bytes.length))
    hash.update(len)
    if (bytes !== null) hash.update(bytes)
  }
  part(Buffer.from(source.path))
  part(Buffer.from(source.query))
  part(source.body)
  part(source.requestId == null ? null : Buffer.from(source.requestId))
  return `evt_${hash.digest('hex').slice(0, 32)}`
}

/** The injectable clock of a store: ms since the epoch. */
export type Clock = () => number

/** Options common to both stores. */
export interface StoreOptions {
  /** Default: `Date.now`. */
  now?: Clock
  /** Called after every group-commit transaction. */
  onCommit?: CommitObserver
  /** Create the store (file or tables) when missing. False for the `events` CLI. Default: true. */
  create?: boolean
}
