import type pg from 'pg'
import { ossError, storeUnusable } from '../errors.js'
import { firstLine, loadDriver } from './driver.js'
import { GroupCommit, type WriteMode } from './group-commit.js'
import { appendedEvent, attemptParams, byDue, checkObjectKeys, encodeCursor, EVENTS, listQuery, META, metaTable, migrations, PROBE_VALUE, SCHEMA_VERSION, SQL, toAttempt, toEvent, toObjectRef, toSummary } from './sql.js'
import type {
  AppendResult, AttemptRecord, EventState, EventStats, EventStore, FinalState, ListPage, ListQuery, NewEvent,
  ObjectEventRef, RecordedAnswer, RedeliverTarget, StoreOptions, StoredAttempt, StoredEvent
} from './store.js'
import { EVENT_STATES } from './store.js'

type Row = Record<string, unknown>
type Client = pg.PoolClient

const DEFAULT_BATCH = 500
const INT8_OID = 20

/** Options of the PostgreSQL store. */
export interface PostgresStoreOptions extends StoreOptions {
  /** Connections in the pool. Default: 10. */
  poolSize?: number
  /** Group-commit transactions that may run at once. Default: 4. */
  writers?: number
  /** Connecting, in ms. Default: 5000. */
  connectTimeoutMs?: number
}

/** `$1, $2, …` for the shared `?` placeholders (the shared SQL has no `?` in literals). */
export function numbered (sql: string): string {
  let i = 0
  return sql.replace(/\?/g, () => `$${++i}`)
}

/** The URL without its password, for messages. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return 'postgres://…'
  }
}

/**
 * Opens the PostgreSQL event store: several receivers share one log, each claim leasing its
 * events (`FOR UPDATE SKIP LOCKED`) so one instance at a time attempts each. Migrations run under
 * an advisory lock, so instances starting together migrate once.
 */
export async function openPostgresStore (url: string, options: PostgresStoreOptions = {}): Promise<PostgresEventStore> {
  const driver = await loadDriver<typeof pg>('pg', 'postgres://')
  const where = redactUrl(url)
  const intParser = (v: string): number => Number(v)
  const pool = new driver.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    // BIGINT milliseconds come back as numbers, for this pool only (never the user's global pg types).
    types: { getTypeParser: ((oid: number, format?: string) => oid === INT8_OID ? intParser : driver.types.getTypeParser(oid, format as 'text')) as typeof driver.types.getTypeParser }
  })
  // A connection's error (the server restarted) must not crash the process. pg emits it on the pool for an
  // idle connection, but on the client itself while it is checked out (a transaction between two queries,
  // the sweep's lock held for minutes), where no listener meant an uncaught exception. The query in flight
  // rejects anyway; the pool drops a client that errored when it is released, and the next query reconnects.
  pool.on('error', () => {})
  pool.on('connect', (client) => { client.on('error', () => {}) })
  let client: Client
  try {
    client = await pool.connect()
  } catch (err) {
    await pool.end()
    throw storeUnusable(`cannot connect to PostgreSQL at ${where}: ${firstLine(err)}`)
  }
  try {
    await client.query('BEGIN')
    await client.query("SELECT pg_advisory_xact_lock(hashtext('oss_callback_migrate'))")
    const exists = await client.query(`SELECT to_regclass('${META}') IS NOT NULL AS meta, to_regclass('${EVENTS}') IS NOT NULL AS events`)
    const found = exists.rows[0] as { meta: boolean, events: boolean }
    if (!found.meta && found.events) throw storeUnusable(`${where} has a table ${EVENTS} that is not an oss-callback event store's`)
    if (!found.meta && options.create === false) throw storeUnusable(`no event store in ${where}`)
    await client.query(metaTable())
    const row = (await client.query(SQL.readVersion)).rows[0] as Row | undefined
    const version = row === undefined ? 0 : Number(row.value)
    if (version > SCHEMA_VERSION) {
      throw storeUnusable(`${where} has event store schema version ${version}, newer than this oss-callback's ${SCHEMA_VERSION}: upgrade oss-callback`)
    }
    const steps = migrations('postgres')
    for (let v = version; v < SCHEMA_VERSION; v++) for (const sql of steps[v] ?? []) await client.query(sql)
    if (version !== SCHEMA_VERSION) await client.query(numbered(SQL.setVersion), [String(SCHEMA_VERSION)])
    await client.query('COMMIT')
    client.release()
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    client.release(true)
    await pool.end()
    if ((err as { code?: unknown }).code === 'OSS_CB_ERR_STORE_UNUSABLE') throw err
    throw storeUnusable(`cannot migrate the event store in ${where}: ${firstLine(err)}`)
  }
  return new PostgresEventStore(pool, options)
}

const Q = {
  insert: numbered(SQL.insert),
  get: numbered(SQL.get),
  claim: numbered(SQL.claim(' FOR UPDATE SKIP LOCKED')),
  finish: numbered(SQL.finish),
  reschedule: numbered(SQL.reschedule),
  insertAttempt: numbered(SQL.insertAttempt),
  redeliverId: numbered(SQL.redeliverId),
  redeliverState: numbered(SQL.redeliverState),
  attempts: numbered(SQL.attempts),
  byObject: numbered(SQL.byObject),
  // One array parameter instead of a placeholder per key: one statement text, prepared once.
  byObjects: `SELECT object_key, etag, type, state FROM ${EVENTS} WHERE bucket = $1 AND object_key = ANY($2::text[])`,
  withoutObject: numbered(SQL.withoutObject),
  purge: numbered(SQL.purge),
  expire: numbered(SQL.expire),
  probeWrite: numbered(SQL.probeWrite),
  probeErase: SQL.probeErase
}

const SWEEP_LOCK = "SELECT pg_try_advisory_lock(hashtext('oss_callback_reconcile')) AS locked"
const SWEEP_UNLOCK = "SELECT pg_advisory_unlock(hashtext('oss_callback_reconcile'))"

/** The PostgreSQL {@link EventStore}. */
export class PostgresEventStore implements EventStore {
  readonly dialect = 'postgres' as const
  private readonly now: () => number
  private readonly commit: GroupCommit<(client: Client) => Promise<unknown>>
  private closed = false

  constructor (private readonly pool: pg.Pool, options: PostgresStoreOptions) {
    this.now = options.now ?? Date.now
    this.commit = new GroupCommit<(client: Client) => Promise<unknown>>(async (ops, durable) => {
      const client = await this.pool.connect()
      try {
        await client.query('BEGIN')
        if (!durable) await client.query('SET LOCAL synchronous_commit = off')
        const results: unknown[] = []
        for (const op of ops) results.push(await op(client))
        await client.query('COMMIT')
        client.release()
        return results
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        client.release(true)
        throw err
      }
    }, options.writers ?? 4, options.onCommit)
  }

  private write<T> (op: (client: Client) => Promise<T>, mode?: WriteMode): Promise<T> {
    return this.commit.write<T>(op, mode)
  }

  append (event: NewEvent): Promise<AppendResult> {
    return this.write(async (c) => {
      const now = this.now()
      const inserted = (await c.query(Q.insert, [event.id, event.type, event.bucket, event.objectKey, event.etag, event.envelope,
        event.firstAttemptAt ?? now, now, now, now])).rowCount === 1
      if (inserted) return { event: appendedEvent(event, now), created: true }
      return { event: toEvent((await c.query(Q.get, [event.id])).rows[0] as Row), created: false }
    })
  }

  async get (id: string): Promise<StoredEvent | null> {
    const row = (await this.read(Q.get, [id]))[0]
    return row === undefined ? null : toEvent(row)
  }

  claimDue (owner: string, limit: number, leaseMs: number): Promise<StoredEvent[]> {
    return this.write(async (c) => {
      const now = this.now()
      const { rows } = await c.query(Q.claim, [owner, now + leaseMs, now, now, limit])
      return (rows as Row[]).map(toEvent).sort(byDue)
    }, 'prompt')
  }

  finish (id: string, state: FinalState, attempt: AttemptRecord | null, answer?: RecordedAnswer): Promise<boolean> {
    return this.write(async (c) => {
      const row = (await c.query(Q.finish, [state, attempt === null ? 0 : 1, attempt?.error ?? null, answer?.status ?? null, answer?.body ?? null, this.now(), id])).rows[0] as Row | undefined
      if (row === undefined) return false
      if (attempt !== null) await c.query(Q.insertAttempt, attemptParams(id, Number(row.attempts), attempt))
      return true
    }, attempt === null ? 'durable' : 'lazy')
  }

  reschedule (id: string, attempt: AttemptRecord, nextAttemptAt: number, answer?: RecordedAnswer): Promise<boolean> {
    return this.write(async (c) => {
      const row = (await c.query(Q.reschedule, [nextAttemptAt, attempt.error, answer?.status ?? null, answer?.body ?? null, this.now(), id])).rows[0] as Row | undefined
      if (row === undefined) return false
      await c.query(Q.insertAttempt, attemptParams(id, Number(row.attempts), attempt))
      return true
    }, 'lazy')
  }

  redeliver (target: RedeliverTarget): Promise<number> {
    return this.write(async (c) => {
      const now = this.now()
      if ('ids' in target) {
        let n = 0
        for (const id of target.ids) n += (await c.query(Q.redeliverId, [now, now, now, id])).rowCount ?? 0
        return n
      }
      return (await c.query(Q.redeliverState, [now, now, now, target.state, target.since ?? 0])).rowCount ?? 0
    })
  }

  async list (query: ListQuery = {}): Promise<ListPage> {
    const { sql, params, limit } = listQuery(query)
    const rows = await this.read(numbered(sql), params)
    const events = rows.slice(0, limit).map(toSummary)
    const last = events[events.length - 1]
    return { events, next: rows.length > limit && last !== undefined ? encodeCursor(last) : null }
  }

  async show (id: string): Promise<{ event: StoredEvent, attempts: StoredAttempt[] } | null> {
    const row = (await this.read(Q.get, [id]))[0]
    if (row === undefined) return null
    return { event: toEvent(row), attempts: (await this.read(Q.attempts, [id])).map(toAttempt) }
  }

  async findByObject (bucket: string, objectKey: string, limit = 100): Promise<StoredEvent[]> {
    return (await this.read(Q.byObject, [bucket, objectKey, limit])).map(toEvent)
  }

  async findByObjects (bucket: string, objectKeys: readonly string[]): Promise<ObjectEventRef[]> {
    checkObjectKeys(objectKeys)
    if (objectKeys.length === 0) return []
    return (await this.read(Q.byObjects, [bucket, objectKeys])).map(toObjectRef)
  }

  async countWithoutObject (since: number): Promise<number> {
    return Number((await this.read(Q.withoutObject, [since]))[0]?.n ?? 0)
  }

  async withSweepLock<T> (fn: () => Promise<T>): Promise<{ ran: true, value: T } | { ran: false }> {
    // A session lock on a connection held for the sweep: it is released if this process dies.
    let client: Client
    try {
      client = await this.pool.connect()
    } catch (err) {
      throw ossError('STORE_FAILED', 'event store read failed', err)
    }
    let locked = false
    try {
      locked = (await client.query(SWEEP_LOCK)).rows[0]?.locked === true
      if (!locked) return { ran: false }
      return { ran: true, value: await fn() }
    } catch (err) {
      if (!locked) throw ossError('STORE_FAILED', 'event store read failed', err)
      throw err
    } finally {
      // A connection whose unlock failed is destroyed, which ends its session and so its lock.
      let broken = false
      if (locked) await client.query(SWEEP_UNLOCK).catch(() => { broken = true })
      client.release(broken)
    }
  }

  async stats (): Promise<EventStats> {
    const counts = Object.fromEntries(EVENT_STATES.map((s) => [s, 0])) as Record<EventState, number>
    for (const r of await this.read(SQL.countByState, [])) counts[r.state as EventState] = Number(r.n)
    const t = (await this.read(SQL.oldestPending, []))[0]?.t
    return { counts, oldestPendingAt: t === null || t === undefined ? null : Number(t) }
  }

  purge (state: EventState, before: number, batchSize = DEFAULT_BATCH): Promise<number> {
    return this.write(async (c) => (await c.query(Q.purge, [state, before, before, batchSize])).rowCount ?? 0, 'lazy')
  }

  deleteExpired (before: number, batchSize = DEFAULT_BATCH): Promise<number> {
    return this.write(async (c) => (await c.query(Q.expire, [before, before, batchSize])).rowCount ?? 0, 'lazy')
  }

  async probe (): Promise<void> {
    await this.write(async (c) => { await c.query(Q.probeWrite, [PROBE_VALUE]); await c.query(Q.probeErase) })
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commit.drain()
    await this.pool.end()
  }

  private async read (sql: string, params: unknown[]): Promise<Row[]> {
    try {
      return (await this.pool.query(sql, params)).rows as Row[]
    } catch (err) {
      throw ossError('STORE_FAILED', 'event store read failed', err)
    }
  }
}
