import { closeSync, existsSync, fsync, mkdirSync, openSync } from 'node:fs'
import { promisify } from 'node:util'
import { dirname, resolve } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import { ossError, storeUnusable } from '../errors.js'
import { firstLine, loadDriver } from './driver.js'
import { GroupCommit } from './group-commit.js'
import { attemptParams, byDue, checkObjectKeys, encodeCursor, listQuery, META, metaTable, migrations, PROBE_VALUE, SCHEMA_VERSION, SQL, toAttempt, toEvent, toObjectRef, toSummary } from './sql.js'
import type {
  AppendResult, AttemptRecord, EventState, EventStats, EventStore, FinalState, ListPage, ListQuery, NewEvent,
  ObjectEventRef, RecordedAnswer, RedeliverTarget, StoreOptions, StoredAttempt, StoredEvent
} from './store.js'
import { EVENT_STATES } from './store.js'

type Database = BetterSqlite3.Database
type Row = Record<string, unknown>

const DEFAULT_BATCH = 500

/**
 * Opens (and, unless `create` is false, creates) the SQLite event store at `path`: WAL, and a durable
 * commit is on disk before it resolves (see the constructor). One process only: the claim is
 * an UPDATE in the one writer's transaction. Refuses, with one line naming the file, a file that
 * is not SQLite (or is corrupt), an SQLite database of something else, or a newer schema.
 */
export async function openSqliteStore (path: string, options: StoreOptions = {}): Promise<SqliteEventStore> {
  const Driver = await loadDriver<typeof BetterSqlite3>('better-sqlite3', 'sqlite:')
  const file = resolve(path)
  const create = options.create ?? true
  if (!create && !existsSync(file)) throw storeUnusable(`no event store at ${file}`)
  if (create) mkdirSync(dirname(file), { recursive: true })
  let db: Database
  try {
    db = new Driver(file, { fileMustExist: !create })
  } catch (err) {
    throw storeUnusable(`cannot open ${file}: ${firstLine(err)}`)
  }
  try {
    prepareDatabase(db, file, create)
  } catch (err) {
    db.close()
    throw err
  }
  return new SqliteEventStore(db, file, options)
}

function prepareDatabase (db: Database, file: string, create: boolean): void {
  let tables: string[]
  try {
    // The first read of the header: a file that is not SQLite (or whose header is damaged) fails here.
    tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Row[]).map((r) => String(r.name))
    db.pragma('journal_mode = WAL')
    db.pragma('foreign_keys = ON')
    db.pragma('busy_timeout = 5000')
  } catch (err) {
    throw storeUnusable(`${file} is not an oss-callback event store (not an SQLite database, or corrupt: ${firstLine(err)})`)
  }
  if (tables.length > 0 && !tables.includes(META)) throw storeUnusable(`${file} is an SQLite database of something else, not an oss-callback event store`)
  if (tables.length === 0 && !create) throw storeUnusable(`no event store at ${file} (the file is empty)`)
  try {
    db.transaction(() => {
      db.exec(metaTable())
      const row = db.prepare(SQL.readVersion).get() as Row | undefined
      const version = row === undefined ? 0 : Number(row.value)
      if (!Number.isSafeInteger(version) || version < 0) throw storeUnusable(`${file} has an unreadable schema version`)
      if (version > SCHEMA_VERSION) {
        throw storeUnusable(`${file} has event store schema version ${version}, newer than this oss-callback's ${SCHEMA_VERSION}: upgrade oss-callback`)
      }
      const steps = migrations('sqlite')
      for (let v = version; v < SCHEMA_VERSION; v++) for (const sql of steps[v] ?? []) db.exec(sql)
      if (version !== SCHEMA_VERSION) db.prepare(SQL.setVersion).run(String(SCHEMA_VERSION))
    }).immediate()
  } catch (err) {
    if ((err as { code?: unknown }).code === 'OSS_CB_ERR_STORE_UNUSABLE') throw err
    throw storeUnusable(`${file} cannot be migrated: ${firstLine(err)}`)
  }
  // Corruption deeper in the file shows on the first read of the damaged page; check the structure now.
  const check = db.pragma('quick_check(1)', { simple: true })
  if (check !== 'ok') throw storeUnusable(`${file} is corrupt: ${firstLine(String(check))}`)
}

/** The SQLite {@link EventStore}. */
export class SqliteEventStore implements EventStore {
  readonly dialect = 'sqlite' as const
  private readonly now: () => number
  private readonly commit: GroupCommit<Database>
  private readonly stmt: ReturnType<typeof prepareStatements>
  private closed = false
  private sweeping = false
  // The write-ahead log stays the same file while this connection is open (SQLite deletes it at the last close).
  private walFd: number | undefined

  constructor (private readonly db: Database, readonly file: string, options: StoreOptions) {
    this.now = options.now ?? Date.now
    this.stmt = prepareStatements(db)
    // synchronous=FULL would fsync the log inside COMMIT, and better-sqlite3 runs on the event loop: every
    // callback in flight would wait out each fsync. Commits run with NORMAL instead (the log is written,
    // not flushed), and a durable batch then flushes the log on libuv's thread pool before any of its
    // callers resolves: the same guarantee as FULL, with the loop free meanwhile. A non-durable batch
    // (a claim, a delivery outcome) is in the OS's hands at once and on disk with the next flush.
    db.pragma('synchronous = NORMAL')
    const flush = options.fsync ?? promisify(fsync)
    const run = db.transaction((ops: Array<(tx: Database) => unknown>) => ops.map((op) => op(db)))
    this.commit = new GroupCommit<Database>(async (ops, durable) => {
      const results = run.immediate(ops)
      if (durable) await flush(this.walFd ??= openSync(`${file}-wal`, 'r'))
      return results
    }, 1, options.onCommit)
  }

  /** The driver's handle, for tests and diagnostics (for example `max_page_count`). */
  get database (): Database { return this.db }

  append (event: NewEvent): Promise<AppendResult> {
    return this.commit.write(() => {
      const now = this.now()
      const inserted = this.stmt.insert.get(event.id, event.type, event.bucket, event.objectKey, event.etag, event.envelope,
        event.firstAttemptAt ?? now, now, now, now) as Row | undefined
      if (inserted !== undefined) return { event: toEvent(inserted), created: true }
      return { event: toEvent(this.stmt.get.get(event.id) as Row), created: false }
    })
  }

  async get (id: string): Promise<StoredEvent | null> {
    const row = this.read(() => this.stmt.get.get(id) as Row | undefined)
    return row === undefined ? null : toEvent(row)
  }

  claimDue (owner: string, limit: number, leaseMs: number): Promise<StoredEvent[]> {
    return this.commit.write(() => {
      const now = this.now()
      const rows = this.stmt.claim.all(owner, now + leaseMs, now, now, limit) as Row[]
      return rows.map(toEvent).sort(byDue)
    }, 'prompt')
  }

  finish (id: string, state: FinalState, attempt: AttemptRecord | null, answer?: RecordedAnswer): Promise<boolean> {
    return this.commit.write(() => {
      const row = this.stmt.finish.get(state, attempt === null ? 0 : 1, attempt?.error ?? null, answer?.status ?? null, answer?.body ?? null, this.now(), id) as Row | undefined
      if (row === undefined) return false
      if (attempt !== null) this.stmt.insertAttempt.run(...attemptParams(id, Number(row.attempts), attempt))
      return true
    }, attempt === null ? 'durable' : 'lazy')
  }

  reschedule (id: string, attempt: AttemptRecord, nextAttemptAt: number, answer?: RecordedAnswer): Promise<boolean> {
    return this.commit.write(() => {
      const row = this.stmt.reschedule.get(nextAttemptAt, attempt.error, answer?.status ?? null, answer?.body ?? null, this.now(), id) as Row | undefined
      if (row === undefined) return false
      this.stmt.insertAttempt.run(...attemptParams(id, Number(row.attempts), attempt))
      return true
    }, 'lazy')
  }

  redeliver (target: RedeliverTarget): Promise<number> {
    return this.commit.write(() => {
      const now = this.now()
      if ('ids' in target) return target.ids.reduce((n, id) => n + this.stmt.redeliverId.run(now, now, now, id).changes, 0)
      return this.stmt.redeliverState.run(now, now, now, target.state, target.since ?? 0).changes
    })
  }

  async list (query: ListQuery = {}): Promise<ListPage> {
    const { sql, params, limit } = listQuery(query)
    const rows = this.read(() => this.db.prepare(sql).all(...params) as Row[])
    const events = rows.slice(0, limit).map(toSummary)
    const last = events[events.length - 1]
    return { events, next: rows.length > limit && last !== undefined ? encodeCursor(last) : null }
  }

  async show (id: string): Promise<{ event: StoredEvent, attempts: StoredAttempt[] } | null> {
    return this.read(() => {
      const row = this.stmt.get.get(id) as Row | undefined
      if (row === undefined) return null
      return { event: toEvent(row), attempts: (this.stmt.attempts.all(id) as Row[]).map(toAttempt) }
    })
  }

  async findByObject (bucket: string, objectKey: string, limit = 100): Promise<StoredEvent[]> {
    return this.read(() => (this.stmt.byObject.all(bucket, objectKey, limit) as Row[]).map(toEvent))
  }

  async findByObjects (bucket: string, objectKeys: readonly string[]): Promise<ObjectEventRef[]> {
    checkObjectKeys(objectKeys)
    if (objectKeys.length === 0) return []
    return this.read(() => (this.db.prepare(SQL.byObjects(objectKeys.length)).all(bucket, ...objectKeys) as Row[]).map(toObjectRef))
  }

  async countWithoutObject (since: number): Promise<number> {
    return this.read(() => Number((this.stmt.withoutObject.get(since) as Row).n))
  }

  async withSweepLock<T> (fn: () => Promise<T>): Promise<{ ran: true, value: T } | { ran: false }> {
    if (this.sweeping) return { ran: false }
    this.sweeping = true
    try {
      return { ran: true, value: await fn() }
    } finally {
      this.sweeping = false
    }
  }

  async stats (): Promise<EventStats> {
    return this.read(() => {
      const counts = Object.fromEntries(EVENT_STATES.map((s) => [s, 0])) as Record<EventState, number>
      for (const r of this.stmt.countByState.all() as Row[]) counts[r.state as EventState] = Number(r.n)
      const t = (this.stmt.oldestPending.get() as Row).t
      return { counts, oldestPendingAt: t === null ? null : Number(t) }
    })
  }

  purge (state: EventState, before: number, batchSize = DEFAULT_BATCH): Promise<number> {
    return this.commit.write(() => this.stmt.purge.run(state, before, batchSize).changes, 'lazy')
  }

  deleteExpired (before: number, batchSize = DEFAULT_BATCH): Promise<number> {
    return this.commit.write(() => this.stmt.expire.run(before, batchSize).changes, 'lazy')
  }

  async probe (): Promise<void> {
    await this.commit.write(() => { this.stmt.probeWrite.run(PROBE_VALUE); this.stmt.probeErase.run() })
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commit.drain()
    if (this.walFd !== undefined) closeSync(this.walFd)
    this.db.close()
  }

  private read<T> (fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw ossError('STORE_FAILED', 'event store read failed', err)
    }
  }
}

function prepareStatements (db: Database) {
  return {
    insert: db.prepare(SQL.insert),
    get: db.prepare(SQL.get),
    claim: db.prepare(SQL.claim('')),
    finish: db.prepare(SQL.finish),
    reschedule: db.prepare(SQL.reschedule),
    insertAttempt: db.prepare(SQL.insertAttempt),
    redeliverId: db.prepare(SQL.redeliverId),
    redeliverState: db.prepare(SQL.redeliverState),
    attempts: db.prepare(SQL.attempts),
    byObject: db.prepare(SQL.byObject),
    withoutObject: db.prepare(SQL.withoutObject),
    countByState: db.prepare(SQL.countByState),
    oldestPending: db.prepare(SQL.oldestPending),
    purge: db.prepare(SQL.purge),
    expire: db.prepare(SQL.expire),
    probeWrite: db.prepare(SQL.probeWrite),
    probeErase: db.prepare(SQL.probeErase)
  }
}
