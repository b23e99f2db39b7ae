import { existsSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import { ossError, storeUnusable } from '../errors.js'
import { firstLine, loadDriver } from './driver.js'
import { GroupCommit } from './group-commit.js'
import { SqliteCheckpointer } from './sqlite-checkpointer.js'
import { SqliteWriter, type WriterOp, type WriterStatements } from './sqlite-writer.js'
import { appendedEvent, attemptParams, byDue, checkObjectKeys, encodeCursor, listQuery, META, metaTable, migrations, PROBE_VALUE, SCHEMA_VERSION, SQL, toAttempt, toEvent, toObjectRef, toSummary } from './sql.js'
import type {
  AppendResult, AttemptRecord, EventState, EventStats, EventStore, FinalState, ListPage, ListQuery, NewEvent,
  ObjectEventRef, RecordedAnswer, RedeliverTarget, StoreOptions, StoredAttempt, StoredEvent
} from './store.js'
import { EVENT_STATES } from './store.js'

type Database = BetterSqlite3.Database
type Row = Record<string, unknown>

const DEFAULT_BATCH = 500
const CHECKPOINT_INTERVAL_MS = 50

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
  const driver = createRequire(import.meta.url).resolve('better-sqlite3')
  const writer = new SqliteWriter({ driver, file, sql: WRITER_STATEMENTS })
  try {
    await writer.start()
  } catch (err) {
    db.close()
    throw err
  }
  return new SqliteEventStore(db, writer, new SqliteCheckpointer({ driver, file, intervalMs: CHECKPOINT_INTERVAL_MS }), file, options)
}

const WRITER_STATEMENTS: WriterStatements = {
  insert: SQL.insert,
  get: SQL.get,
  claim: SQL.claim(''),
  finish: SQL.finish,
  reschedule: SQL.reschedule,
  insertAttempt: SQL.insertAttempt,
  redeliverId: SQL.redeliverId,
  redeliverState: SQL.redeliverState,
  purge: SQL.purge,
  expire: SQL.expire,
  probeWrite: SQL.probeWrite,
  probeErase: SQL.probeErase
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
  private readonly commit: GroupCommit<WriterOp>
  private readonly stmt: ReturnType<typeof prepareStatements>
  private closed = false
  private sweeping = false

  /** `db` is this thread's connection, for reads; every write goes to `writer`'s thread. */
  constructor (private readonly db: Database, private readonly writer: SqliteWriter, private readonly checkpointer: SqliteCheckpointer,
    readonly file: string, options: StoreOptions) {
    this.now = options.now ?? Date.now
    this.stmt = prepareStatements(db)
    // A durable batch is on disk before its callers resolve: the writer fsyncs the write-ahead log after
    // the commit (see sqlite-writer.ts). Two batches may be out at once, so the next one is with the
    // writer while this one's fsync runs.
    this.commit = new GroupCommit<WriterOp>(async (ops, durable) => await this.writer.run(ops, durable), 2, options.onCommit)
  }

  /** This thread's connection (reads only), for tests and diagnostics. */
  get database (): Database { return this.db }

  /** Runs a pragma on the writer's connection, for tests and diagnostics (for example `max_page_count`). */
  async pragma (source: string, options: { simple?: boolean } = {}): Promise<unknown> {
    return await this.writer.pragma(source, options.simple)
  }

  async append (event: NewEvent): Promise<AppendResult> {
    const now = this.now()
    const row = await this.commit.write<Row | null>(
      ['append', event.id, event.type, event.bucket, event.objectKey, event.etag, event.envelope, event.firstAttemptAt ?? now, now])
    return row === null ? { event: appendedEvent(event, now), created: true } : { event: toEvent(row), created: false }
  }

  async get (id: string): Promise<StoredEvent | null> {
    const row = this.read(() => this.stmt.get.get(id) as Row | undefined)
    return row === undefined ? null : toEvent(row)
  }

  async claimDue (owner: string, limit: number, leaseMs: number): Promise<StoredEvent[]> {
    const now = this.now()
    const rows = await this.commit.write<Row[]>(['claim', owner, now + leaseMs, now, limit], 'prompt')
    return rows.map(toEvent).sort(byDue)
  }

  finish (id: string, state: FinalState, attempt: AttemptRecord | null, answer?: RecordedAnswer): Promise<boolean> {
    return this.commit.write(['finish', state, attempt === null ? 0 : 1, attempt?.error ?? null, answer?.status ?? null, answer?.body ?? null, this.now(), id,
      attempt === null ? null : attemptRow(id, attempt)], attempt === null ? 'durable' : 'lazy')
  }

  reschedule (id: string, attempt: AttemptRecord, nextAttemptAt: number, answer?: RecordedAnswer): Promise<boolean> {
    return this.commit.write(['reschedule', nextAttemptAt, attempt.error, answer?.status ?? null, answer?.body ?? null, this.now(), id, attemptRow(id, attempt)], 'lazy')
  }

  redeliver (target: RedeliverTarget): Promise<number> {
    const now = this.now()
    return this.commit.write('ids' in target ? ['redeliverIds', now, [...target.ids]] : ['redeliverState', now, target.state, target.since ?? 0])
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
    return this.commit.write(['purge', state, before, batchSize], 'lazy')
  }

  deleteExpired (before: number, batchSize = DEFAULT_BATCH): Promise<number> {
    return this.commit.write(['expire', before, batchSize], 'lazy')
  }

  async probe (): Promise<void> {
    await this.commit.write(['probe', PROBE_VALUE])
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commit.drain()
    await this.checkpointer.close()
    await this.writer.close()
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

/** An attempt row's parameters without its number, which the writer reads from the event's row. */
function attemptRow (id: string, attempt: AttemptRecord): unknown[] {
  const [eventId, , ...rest] = attemptParams(id, 0, attempt)
  return [eventId, ...rest]
}

function prepareStatements (db: Database) {
  return {
    get: db.prepare(SQL.get),
    attempts: db.prepare(SQL.attempts),
    byObject: db.prepare(SQL.byObject),
    withoutObject: db.prepare(SQL.withoutObject),
    countByState: db.prepare(SQL.countByState),
    oldestPending: db.prepare(SQL.oldestPending)
  }
}
