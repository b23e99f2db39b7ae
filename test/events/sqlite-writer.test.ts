import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isMainThread } from 'node:worker_threads'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openSqliteStore } from '../../src/events/sqlite.js'
import { SqliteWriter } from '../../src/events/sqlite-writer.js'
import { eventId, type NewEvent } from '../../src/events/store.js'

let dir: string
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'oss-cb-writer-')) })
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

const event = (n: number): NewEvent => ({
  id: eventId({ path: '/cb', query: '', body: Buffer.from(`body ${n}`), requestId: `req-${n}` }),
  type: 'oss.callback.verified',
  bucket: 'bucket',
  objectKey: `uploads/${n}.jpg`,
  etag: null,
  envelope: JSON.stringify({ n })
})

describe('the SQLite store\'s writer thread', () => {
  it('runs the writes on a connection of its own thread; this thread\'s connection reads every committed batch', async () => {
    const store = await openSqliteStore(join(dir, 'thread.sqlite'))
    try {
      expect(isMainThread).toBe(true)
      const results = await Promise.all([1, 2, 3].map(async (n) => await store.append(event(n))))
      expect(results.map((r) => r.created)).toEqual([true, true, true])
      expect(store.database.prepare('SELECT COUNT(*) AS n FROM oss_callback_events').get()).toEqual({ n: 3 })
      // The two connections are distinct: a limit set on the writer's is not the reader's.
      await store.pragma('cache_size = -1234')
      expect(await store.pragma('cache_size', { simple: true })).toBe(-1234)
      expect(store.database.pragma('cache_size', { simple: true })).not.toBe(-1234)
    } finally { await store.close() }
  })

  it.each(['exit', 'throw'] as const)('a writer that dies (%s) fails the writes in flight with STORE_FAILED; the next write starts a new writer and the store goes on', async (how) => {
    const store = await openSqliteStore(join(dir, `crash-${how}.sqlite`))
    try {
      await store.append(event(1))
      const writer = (store as unknown as { writer: SqliteWriter }).writer
      writer.crashAtNextBatch(how)
      const inFlight = store.append(event(2))
      await expect(inFlight).rejects.toMatchObject({ code: 'OSS_CB_ERR_STORE_FAILED', statusCode: 503 })
      expect((await store.append(event(3))).created).toBe(true)
      // A resent callback of the lost write is a new event: nothing of it was committed.
      expect((await store.append(event(2))).created).toBe(true)
      expect((await store.stats()).counts.pending).toBe(3)
    } finally { await store.close() }
  })

  it('a file the writer cannot open is refused at start with one line naming it', async () => {
    const file = join(dir, 'missing', 'nothing.sqlite')
    const writer = new SqliteWriter({ driver: createRequire(import.meta.url).resolve('better-sqlite3'), file, sql: {} as never })
    const refusal = await writer.start().then(() => null, (err: unknown) => err as Error & { code?: string })
    expect(refusal?.code).toBe('OSS_CB_ERR_STORE_UNUSABLE')
    expect(refusal?.message).toContain(file)
    expect(refusal?.message).not.toContain('\n')
    await writer.close()
  })

  it('refuses writes once closed', async () => {
    const store = await openSqliteStore(join(dir, 'closed.sqlite'))
    await store.close()
    await expect(store.append(event(1))).rejects.toMatchObject({ code: 'OSS_CB_ERR_STORE_FAILED' })
  })
})
