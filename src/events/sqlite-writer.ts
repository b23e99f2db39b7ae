import type { MessagePort } from 'node:worker_threads'
import { Worker } from 'node:worker_threads'
import type BetterSqlite3 from 'better-sqlite3'
import { storeUnusable } from '../errors.js'
import { firstLine } from './driver.js'

/**
 * The SQLite store's one writer, on a worker thread. better-sqlite3 is synchronous: on the event
 * loop, every statement, index update, log write and checkpoint of the log would hold up every
 * callback in flight. Here the loop only posts a batch and gets its rows back.
 *
 * A batch is a list of operations by name (`WriterOps`) run in one IMMEDIATE transaction; the
 * reply carries their results in order, or the transaction's error. Reads stay on the store's
 * own connection, which sees every committed batch (WAL).
 */
export interface WriterOps {
  append: [id: string, type: string, bucket: string | null, objectKey: string | null, etag: string | null, envelope: string, firstAttemptAt: number, now: number]
  claim: [owner: string, leaseUntil: number, now: number, limit: number]
  finish: [state: string, counted: number, error: string | null, status: number | null, body: Uint8Array | null, now: number, id: string, attempt: unknown[] | null]
  reschedule: [nextAttemptAt: number, error: string | null, status: number | null, body: Uint8Array | null, now: number, id: string, attempt: unknown[]]
  redeliverIds: [now: number, ids: string[]]
  redeliverState: [now: number, state: string, since: number]
  purge: [state: string, before: number, limit: number]
  expire: [before: number, limit: number]
  probe: [value: string]
}

export type WriterOp = { [K in keyof WriterOps]: [K, ...WriterOps[K]] }[keyof WriterOps]

/** The statements the writer prepares, by name (SQL text from sql.ts). */
export type WriterStatements = Record<'insert' | 'get' | 'claim' | 'finish' | 'reschedule' | 'insertAttempt' | 'redeliverId' | 'redeliverState' | 'purge' | 'expire' | 'probeWrite' | 'probeErase', string>

type Reply = { id: number, results: unknown[], flushed: boolean } | { id: number, error: { message: string, code?: string } } | { ready: true } | { failed: string }

/**
 * The worker's whole program. It is started from this function's source text (`eval`), so it
 * must not use anything from outside its body: it runs alike from dist/ and from the TypeScript
 * sources under test.
 */
function writerProgram (): void {
  // Neither `require` nor `import` is certain in eval'd code (it is ESM under --input-type=module).
  const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads')
  const { driver, file, sql } = workerData as { driver: string, file: string, sql: WriterStatements }
  const port = parentPort as MessagePort
  type Row = Record<string, unknown>
  let db: BetterSqlite3.Database
  try {
    const Database = process.getBuiltinModule('node:module').createRequire(driver)(driver) as typeof BetterSqlite3
    db = new Database(file, { fileMustExist: true })
    db.pragma('journal_mode = WAL')
    db.pragma('foreign_keys = ON')
    db.pragma('busy_timeout = 5000')
    // synchronous=FULL would fsync the log inside every COMMIT. With NORMAL the log is written, not flushed,
    // and a durable batch is flushed below before it is answered: FULL's guarantee where it is needed. A
    // batch of claims or delivery outcomes only is in the OS's hands at once and on disk with the next flush.
    db.pragma('synchronous = NORMAL')
    // Checkpoints run on their own thread (sqlite-checkpointer.ts); this one only when the log has grown
    // this far (16 MB of pages) regardless, which also lets the log start over even under constant writes.
    db.pragma('wal_autocheckpoint = 4000')
  } catch (err) {
    port.postMessage({ failed: String((err as Error).message ?? err) })
    return
  }
  const s = Object.fromEntries(Object.entries(sql).map(([name, text]) => [name, db.prepare(text)])) as Record<keyof WriterStatements, BetterSqlite3.Statement>
  const ops: { [K in keyof WriterOps]: (...args: WriterOps[K]) => unknown } = {
    // null when it stored a new row (the caller knows what it holds), else the row already there.
    append (id, type, bucket, objectKey, etag, envelope, firstAttemptAt, now) {
      return s.insert.run(id, type, bucket, objectKey, etag, envelope, firstAttemptAt, now, now, now).changes === 1 ? null : s.get.get(id)
    },
    claim: (owner, leaseUntil, now, limit) => s.claim.all(owner, leaseUntil, now, now, limit),
    finish (state, counted, error, status, body, now, id, attempt) {
      const row = s.finish.get(state, counted, error, status, body, now, id) as Row | undefined
      if (row === undefined) return false
      if (attempt !== null) s.insertAttempt.run(attempt[0], row.attempts, ...attempt.slice(1))
      return true
    },
    reschedule (nextAttemptAt, error, status, body, now, id, attempt) {
      const row = s.reschedule.get(nextAttemptAt, error, status, body, now, id) as Row | undefined
      if (row === undefined) return false
      s.insertAttempt.run(attempt[0], row.attempts, ...attempt.slice(1))
      return true
    },
    redeliverIds: (now, ids) => ids.reduce((n, id) => n + s.redeliverId.run(now, now, now, id).changes, 0),
    redeliverState: (now, state, since) => s.redeliverState.run(now, now, now, state, since).changes,
    purge: (state, before, limit) => s.purge.run(state, before, before, limit).changes,
    expire: (before, limit) => s.expire.run(before, before, limit).changes,
    probe (value) { s.probeWrite.run(value); s.probeErase.run() }
  }
  const run = db.transaction((batch: Array<[keyof WriterOps, ...unknown[]]>) =>
    batch.map(([name, ...args]) => (ops[name] as (...a: unknown[]) => unknown)(...args)))
  const fs = process.getBuiltinModule('node:fs')
  let walFd: number | undefined
  port.on('message', (m: { id: number, ops?: Array<[keyof WriterOps, ...unknown[]]>, durable?: boolean, pragma?: string, simple?: boolean, crash?: 'exit' | 'throw' } | 'close') => {
    if (m === 'close') {
      if (walFd !== undefined) fs.closeSync(walFd)
      db.close()
      port.close()
      return
    }
    if (m.crash === 'exit') {
      if (walFd !== undefined) fs.closeSync(walFd)
      process.exit(70)
    }
    // Uncaught: the thread reports an 'error', then exits.
    if (m.crash === 'throw') throw new Error('the writer failed (a test crash)')
    try {
      const results = m.ops !== undefined ? run.immediate(m.ops) : [db.pragma(m.pragma ?? '', { simple: m.simple ?? false })]
      // The log stays the same file while a connection is open (SQLite deletes it at the last close).
      let flushed = false
      if (m.durable === true) {
        fs.fsyncSync(walFd ??= fs.openSync(`${file}-wal`, 'r'))
        flushed = true
      }
      port.postMessage({ id: m.id, results, flushed })
    } catch (err) {
      port.postMessage({ id: m.id, error: { message: String((err as Error).message ?? err), code: (err as { code?: string }).code } })
    }
  })
  port.postMessage({ ready: true })
}

interface InFlight { resolve: (results: unknown[]) => void, reject: (err: Error) => void }

/** One writer thread and the batches it has not answered yet. */
interface Thread { worker: Worker, inFlight: Map<number, InFlight> }

/** The main thread's handle on the writer. A writer that died is started again for the next batch. */
export class SqliteWriter {
  private thread: Thread | undefined
  private starting: Promise<Thread> | undefined
  private nextId = 0
  private closed = false
  private crashNext: 'exit' | 'throw' | undefined
  private flushCount = 0

  constructor (private readonly data: { driver: string, file: string, sql: WriterStatements }) {}

  /** Starts the worker; rejects with `OSS_CB_ERR_STORE_UNUSABLE` (one line) when it cannot open the file. */
  async start (): Promise<void> {
    await this.ensure()
  }

  /** Runs `ops` in one transaction; resolves with their results in order, once on disk when `durable`. */
  async run (ops: WriterOp[], durable = false): Promise<unknown[]> {
    return await this.send({ ops, durable })
  }

  /** Runs a pragma on the writer's connection (tests and diagnostics: `max_page_count`). */
  async pragma (source: string, simple = false): Promise<unknown> {
    return (await this.send({ pragma: source, simple }))[0]
  }

  /** How many times a writer flushed the log to disk (tests and diagnostics). */
  get flushes (): number { return this.flushCount }

  /**
   * Makes the thread end when the next batch reaches it, as a crash would (tests): by exiting, or by an
   * uncaught exception (an 'error', then the exit). That batch fails, and the one after starts a new writer.
   * (Not `worker.terminate()`: a thread stopped inside a statement takes the whole process down with it in
   * better-sqlite3.)
   */
  crashAtNextBatch (how: 'exit' | 'throw' = 'exit'): void {
    this.crashNext = how
  }

  async close (): Promise<void> {
    this.closed = true
    const thread = this.thread ?? await this.starting?.catch(() => undefined)
    if (thread === undefined) return
    const exited = new Promise<void>((resolve) => thread.worker.once('exit', () => resolve()))
    thread.worker.ref()
    thread.worker.postMessage('close')
    await exited
  }

  private async send (message: { ops?: WriterOp[], durable?: boolean, pragma?: string, simple?: boolean }): Promise<unknown[]> {
    if (this.closed) throw new Error('the event store is closed')
    const { worker, inFlight } = await this.ensure()
    const id = this.nextId++
    return await new Promise<unknown[]>((resolve, reject) => {
      try {
        worker.postMessage({ id, ...message, crash: this.crashNext })
      } catch (err) {
        reject(err as Error)
        return
      }
      this.crashNext = undefined
      inFlight.set(id, { resolve, reject })
      // Held open only while a batch is out, so a store nobody closed never keeps a process alive.
      if (inFlight.size === 1) worker.ref()
    })
  }

  private ensure (): Promise<Thread> {
    if (this.thread !== undefined) return Promise.resolve(this.thread)
    this.starting ??= this.spawn().finally(() => { this.starting = undefined })
    return this.starting
  }

  private spawn (): Promise<Thread> {
    return new Promise<Thread>((resolve, reject) => {
      const worker = new Worker(`(${writerProgram.toString()})()`, { eval: true, workerData: this.data })
      const thread: Thread = { worker, inFlight: new Map() }
      let ready = false
      worker.on('message', (m: Reply) => {
        if ('ready' in m) {
          ready = true
          this.thread = thread
          worker.unref()
          resolve(thread)
          return
        }
        if ('failed' in m) {
          reject(storeUnusable(`cannot open ${this.data.file}: ${firstLine(m.failed)}`))
          return
        }
        const waiting = thread.inFlight.get(m.id)
        if (waiting === undefined) return
        thread.inFlight.delete(m.id)
        if (thread.inFlight.size === 0) worker.unref()
        if ('results' in m) {
          if (m.flushed) this.flushCount++
          waiting.resolve(m.results)
        } else {
          waiting.reject(Object.assign(new Error(m.error.message), { code: m.error.code }))
        }
      })
      // 'error' (an exception on the thread) comes before its 'exit': the first of them ends this writer, and
      // only this one: its batches fail, and a writer started meanwhile is left alone.
      let ended = false
      const gone = (err: Error): void => {
        if (ended) return
        ended = true
        if (this.thread === thread) this.thread = undefined
        if (!ready) reject(storeUnusable(`cannot open ${this.data.file}: ${firstLine(err)}`))
        for (const waiting of thread.inFlight.values()) waiting.reject(err)
        thread.inFlight.clear()
      }
      worker.on('error', gone)
      worker.on('exit', (code) => { gone(new Error(`the event store's writer thread exited (code ${code})`)) })
    })
  }
}
