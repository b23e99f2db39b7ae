import type { MessagePort } from 'node:worker_threads'
import { Worker } from 'node:worker_threads'
import type BetterSqlite3 from 'better-sqlite3'

/**
 * Copies the write-ahead log back into the database file from a thread and connection of its own.
 * SQLite's automatic checkpoint runs inside the commit that fills the log, so the batch of callbacks
 * in that commit waited for it; a PASSIVE checkpoint here runs beside the writer and never blocks it.
 * The writer keeps a larger automatic checkpoint as a backstop (see sqlite-writer.ts): the log stays
 * bounded even if this thread falls behind or dies.
 */
function checkpointerProgram (): void {
  // See writerProgram: neither `require` nor `import` is certain in eval'd code.
  const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads')
  const { driver, file, intervalMs } = workerData as { driver: string, file: string, intervalMs: number }
  const port = parentPort as MessagePort
  const Database = process.getBuiltinModule('node:module').createRequire(driver)(driver) as typeof BetterSqlite3
  const db = new Database(file, { fileMustExist: true })
  const timer = setInterval(() => {
    try {
      db.pragma('wal_checkpoint(PASSIVE)')
    } catch {
      // Busy or failing now: the next tick tries again, and the writer's own checkpoint is the backstop.
    }
  }, intervalMs)
  port.on('message', () => {
    clearInterval(timer)
    db.close()
    port.close()
  })
}

/** The main thread's handle on the checkpoint thread. It holds the process open only while it closes. */
export class SqliteCheckpointer {
  private readonly worker: Worker
  private readonly exited: Promise<void>

  constructor (data: { driver: string, file: string, intervalMs: number }) {
    this.worker = new Worker(`(${checkpointerProgram.toString()})()`, { eval: true, workerData: data })
    this.worker.unref()
    this.exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()))
    // A thread that could not open the file or died: the writer's backstop checkpoints on its own.
    this.worker.on('error', () => {})
  }

  async close (): Promise<void> {
    // Held open until it is gone, or a process whose last step is this close would exit before it ends.
    this.worker.ref()
    this.worker.postMessage('close')
    await this.exited
  }
}
