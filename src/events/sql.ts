import { invalidOption } from '../errors.js'
import type { AttemptRecord, EventState, EventSummary, EventType, ListQuery, NewEvent, ObjectEventRef, RecordedAnswer, StoredAttempt, StoredEvent } from './store.js'

/**
 * The schema and the queries both stores share. Written once with `?` placeholders; the
 * PostgreSQL store numbers them (`$1`, `$2`, …). Times are BIGINT milliseconds since the epoch.
 */
export type Dialect = 'sqlite' | 'postgres'

/** The schema version this code writes. A store with a higher one is refused. */
export const SCHEMA_VERSION = 2

export const EVENTS = 'oss_callback_events'
export const ATTEMPTS = 'oss_callback_attempts'
export const META = 'oss_callback_meta'

/** Statements that create the meta table (version 0 → a store that has one). */
export function metaTable (): string {
  return `CREATE TABLE IF NOT EXISTS ${META} (name TEXT PRIMARY KEY, value TEXT NOT NULL)`
}

/**
 * The migrations, in order: `migrations(d)[i]` brings a store from version i to i + 1.
 * Never edit one that has shipped; add the next.
 */
export function migrations (dialect: Dialect): string[][] {
  const bytes = dialect === 'sqlite' ? 'BLOB' : 'BYTEA'
  return [
    [
      `CREATE TABLE ${EVENTS} (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        bucket TEXT,
        object_key TEXT,
        etag TEXT,
        envelope TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'rejected', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        retry_since BIGINT NOT NULL,
        lease_owner TEXT,
        lease_expires_at BIGINT,
        answer_status INTEGER,
        answer_body ${bytes},
        last_error TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      )`,
      // Each query pages or claims through an index in its own order, never sorting the log.
      `CREATE INDEX ${EVENTS}_due ON ${EVENTS} (state, next_attempt_at, id)`,
      `CREATE INDEX ${EVENTS}_state_created ON ${EVENTS} (state, created_at, id)`,
      `CREATE INDEX ${EVENTS}_state_updated ON ${EVENTS} (state, updated_at)`,
      `CREATE INDEX ${EVENTS}_created ON ${EVENTS} (created_at, id)`,
      `CREATE INDEX ${EVENTS}_object ON ${EVENTS} (bucket, object_key)`,
      `CREATE TABLE ${ATTEMPTS} (
        event_id TEXT NOT NULL REFERENCES ${EVENTS} (id) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        at BIGINT NOT NULL,
        status INTEGER,
        latency_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT,
        PRIMARY KEY (event_id, n)
      )${dialect === 'sqlite' ? ' WITHOUT ROWID' : ''}`
    ],
    // Fewer index writes per callback (its append and its outcome): the claim's index holds pending
    // events only, and the sweeps find old events through (state, created_at) instead of an index of their own.
    [
      `DROP INDEX ${EVENTS}_state_updated`,
      `DROP INDEX ${EVENTS}_due`,
      `CREATE INDEX ${EVENTS}_due ON ${EVENTS} (state, next_attempt_at, id) WHERE state = 'pending'`
    ]
  ]
}

export const SQL = {
  readVersion: `SELECT value FROM ${META} WHERE name = 'schema_version'`,
  setVersion: `INSERT INTO ${META} (name, value) VALUES ('schema_version', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
  insert: `INSERT INTO ${EVENTS} (id, type, bucket, object_key, etag, envelope, state, attempts, next_attempt_at, retry_since, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id`,
  get: `SELECT * FROM ${EVENTS} WHERE id = ?`,
  // A claim writes only unindexed lease columns; the due scan steps over the few leased rows
  // at its head (those in flight), and an expired lease makes its event due again.
  claim: (lock: string): string => `UPDATE ${EVENTS} SET lease_owner = ?, lease_expires_at = ?
    WHERE id IN (SELECT id FROM ${EVENTS} WHERE state = 'pending' AND next_attempt_at <= ?
      AND (lease_expires_at IS NULL OR lease_expires_at <= ?) ORDER BY next_attempt_at, id LIMIT ?${lock})
    RETURNING *`,
  finish: `UPDATE ${EVENTS} SET state = ?, attempts = attempts + ?, lease_owner = NULL, lease_expires_at = NULL,
    last_error = ?, answer_status = COALESCE(?, answer_status), answer_body = COALESCE(?, answer_body), updated_at = ?
    WHERE id = ? AND state = 'pending' RETURNING attempts`,
  reschedule: `UPDATE ${EVENTS} SET attempts = attempts + 1, next_attempt_at = ?, lease_owner = NULL, lease_expires_at = NULL,
    last_error = ?, answer_status = COALESCE(?, answer_status), answer_body = COALESCE(?, answer_body), updated_at = ?
    WHERE id = ? AND state = 'pending' RETURNING attempts`,
  insertAttempt: `INSERT INTO ${ATTEMPTS} (event_id, n, at, status, latency_ms, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  redeliverId: `UPDATE ${EVENTS} SET state = 'pending', next_attempt_at = ?, retry_since = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
    WHERE id = ? AND state <> 'pending'`,
  redeliverState: `UPDATE ${EVENTS} SET state = 'pending', next_attempt_at = ?, retry_since = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
    WHERE state = ? AND created_at >= ?`,
  attempts: `SELECT * FROM ${ATTEMPTS} WHERE event_id = ? ORDER BY n`,
  byObject: `SELECT * FROM ${EVENTS} WHERE bucket = ? AND object_key = ? ORDER BY created_at DESC, id DESC LIMIT ?`,
  byObjects: (n: number): string => `SELECT object_key, etag, type, state FROM ${EVENTS} WHERE bucket = ? AND object_key IN (${new Array(n).fill('?').join(', ')})`,
  withoutObject: `SELECT COUNT(*) AS n FROM ${EVENTS} WHERE created_at >= ? AND type = 'oss.callback.verified' AND (bucket IS NULL OR object_key IS NULL)`,
  countByState: `SELECT state, COUNT(*) AS n FROM ${EVENTS} GROUP BY state`,
  oldestPending: `SELECT MIN(created_at) AS t FROM ${EVENTS} WHERE state = 'pending'`,
  // An event is updated no earlier than it is created, so the created_at bound (the same time) drops no row
  // the updated_at one keeps: it lets the (state, created_at) index find them.
  purge: `DELETE FROM ${EVENTS} WHERE id IN (SELECT id FROM ${EVENTS} WHERE state = ? AND created_at < ? AND updated_at < ? ORDER BY created_at LIMIT ?)`,
  expire: `DELETE FROM ${EVENTS} WHERE id IN (SELECT id FROM ${EVENTS} WHERE state IN ('delivered', 'rejected') AND created_at < ? AND updated_at < ?
    ORDER BY state, created_at LIMIT ?)`,
  // The probe writes a row that needs a fresh page (so a full store fails it) and takes it back.
  probeWrite: `INSERT INTO ${META} (name, value) VALUES ('probe', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
  probeErase: `DELETE FROM ${META} WHERE name = 'probe'`
}

const SUMMARY_COLUMNS = 'id, type, bucket, object_key, etag, state, attempts, next_attempt_at, retry_since, lease_owner, lease_expires_at, answer_status, last_error, created_at, updated_at'

/** A page query with its parameters (keyset paging on created_at, id). */
export function listQuery (query: ListQuery): { sql: string, params: unknown[], limit: number } {
  const limit = Math.min(Math.max(Math.trunc(query.limit ?? 100), 1), 1000)
  const where: string[] = []
  const params: unknown[] = []
  if (query.after !== undefined) {
    const cursor = decodeCursor(query.after)
    // A row value, so both databases seek the index to the cursor instead of scanning up to it.
    where.push('(created_at, id) > (?, ?)')
    params.push(cursor.createdAt, cursor.id)
  }
  if (query.state !== undefined) { where.push('state = ?'); params.push(query.state) }
  if (query.since !== undefined) { where.push('created_at >= ?'); params.push(query.since) }
  if (query.objectPrefix !== undefined && query.objectPrefix !== '') {
    // substr, not LIKE: SQLite's LIKE ignores ASCII case and both treat % and _ as wildcards.
    where.push('substr(object_key, 1, length(?)) = ?')
    params.push(query.objectPrefix, query.objectPrefix)
  }
  params.push(limit + 1)
  const sql = `SELECT ${SUMMARY_COLUMNS} FROM ${EVENTS}${where.length > 0 ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY created_at, id LIMIT ?`
  return { sql, params, limit }
}

export function encodeCursor (e: { createdAt: number, id: string }): string {
  return Buffer.from(`${e.createdAt}:${e.id}`).toString('base64url')
}

function decodeCursor (cursor: string): { createdAt: number, id: string } {
  const text = Buffer.from(cursor, 'base64url').toString()
  const at = text.indexOf(':')
  const createdAt = Number(text.slice(0, at))
  if (at <= 0 || !Number.isSafeInteger(createdAt)) throw invalidOption('the page cursor is not one a listing gave')
  return { createdAt, id: text.slice(at + 1) }
}

type Row = Record<string, unknown>

const num = (v: unknown): number => Number(v)
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v))
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))

export function toSummary (r: Row): EventSummary {
  return {
    id: String(r.id),
    type: r.type as EventType,
    bucket: strOrNull(r.bucket),
    objectKey: strOrNull(r.object_key),
    etag: strOrNull(r.etag),
    state: r.state as EventState,
    attempts: num(r.attempts),
    nextAttemptAt: num(r.next_attempt_at),
    retrySince: num(r.retry_since),
    leaseOwner: strOrNull(r.lease_owner),
    leaseExpiresAt: numOrNull(r.lease_expires_at),
    answerStatus: numOrNull(r.answer_status),
    lastError: strOrNull(r.last_error),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at)
  }
}

/**
 * The event that {@link SQL.insert} stores for `event` at `now`, built here rather than read back:
 * a callback's append would otherwise carry its envelope to the database and back again.
 */
export function appendedEvent (event: NewEvent, now: number): StoredEvent {
  return {
    id: event.id,
    type: event.type,
    bucket: event.bucket,
    objectKey: event.objectKey,
    etag: event.etag,
    envelope: event.envelope,
    state: 'pending',
    attempts: 0,
    nextAttemptAt: event.firstAttemptAt ?? now,
    retrySince: now,
    leaseOwner: null,
    leaseExpiresAt: null,
    answer: null,
    lastError: null,
    createdAt: now,
    updatedAt: now
  }
}

export function toEvent (r: Row): StoredEvent {
  const { answerStatus, ...rest } = toSummary(r)
  const answer: RecordedAnswer | null = answerStatus === null ? null : { status: answerStatus, body: Buffer.from((r.answer_body ?? Buffer.alloc(0)) as Uint8Array) }
  return { ...rest, envelope: String(r.envelope), answer }
}

export function toObjectRef (r: Row): ObjectEventRef {
  return { objectKey: String(r.object_key), etag: strOrNull(r.etag), type: r.type as EventType, state: r.state as EventState }
}

/** Keys per {@link EventStore.findByObjects} call at most (one listing page). */
export const MAX_OBJECTS_PER_LOOKUP = 1000

export function checkObjectKeys (keys: readonly string[]): void {
  if (keys.length > MAX_OBJECTS_PER_LOOKUP) throw invalidOption(`findByObjects takes at most ${MAX_OBJECTS_PER_LOOKUP} keys, got ${keys.length}`)
}

export function toAttempt (r: Row): StoredAttempt {
  return {
    n: num(r.n),
    at: num(r.at),
    status: numOrNull(r.status),
    latencyMs: num(r.latency_ms),
    outcome: r.outcome as AttemptRecord['outcome'],
    error: strOrNull(r.error)
  }
}

/** The probe row's value: larger than a page, so it needs free space. */
export const PROBE_VALUE = 'x'.repeat(8192)

/** Parameters of `SQL.insertAttempt`. */
export function attemptParams (id: string, n: number, a: AttemptRecord): unknown[] {
  return [id, n, a.at, a.status, Math.round(a.latencyMs), a.outcome, a.error]
}

/** Oldest first (RETURNING gives no order, and a claim has moved next_attempt_at to the lease's end). */
export function byDue (a: StoredEvent, b: StoredEvent): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}
