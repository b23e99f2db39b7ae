import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadDriver } from '../../src/events/driver.js'
import { openEventStore } from '../../src/events/open.js'
import { deleteExpiredEvents } from '../../src/events/retention.js'
import { openSqliteStore } from '../../src/events/sqlite.js'
import type { SqliteWriter } from '../../src/events/sqlite-writer.js'
import { metaTable, migrations, SQL } from '../../src/events/sql.js'
import { eventId, type AttemptRecord, type EventStore, type NewEvent } from '../../src/events/store.js'
import { fakeClock, type FakeClock } from '../helpers/clock.js'
import { useEventStores } from '../helpers/event-stores.js'
import { runCli } from '../helpers/process.js'

const fixture = useEventStores('oss-cb-events-')
const { dialects } = fixture

export function newEvent (n: number, over: Partial<NewEvent> = {}): NewEvent {
  return {
    id: eventId({ path: '/cb', query: '', body: Buffer.from(`body ${n}`), requestId: `req-${n}` }),
    type: 'oss.callback.verified',
    bucket: 'bucket',
    objectKey: `uploads/${n}.jpg`,
    etag: `"etag${n}"`,
    envelope: JSON.stringify({ type: 'oss.callback.verified', n }),
    ...over
  }
}

async function refusal (opening: Promise<unknown>): Promise<Error & { code?: string }> {
  try { await opening } catch (err) { return err as Error }
  throw new Error('the store opened')
}

const attempt = (at: number, outcome: AttemptRecord['outcome'], status: number | null, error: string | null = null): AttemptRecord =>
  ({ at, status, latencyMs: 12, outcome, error })

describe('eventId', () => {
  it('is the same for the same signed bytes and request id, and differs when either differs', () => {
    const base = { path: '/cb', query: 'a=1', body: Buffer.from('bucket=b&object=o'), requestId: 'R1' }
    expect(eventId(base)).toBe(eventId({ ...base, body: Buffer.from('bucket=b&object=o') }))
    expect(eventId(base)).toMatch(/^evt_[0-9a-f]{32}$/)
    expect(eventId({ ...base, requestId: 'R2' })).not.toBe(eventId(base))
    expect(eventId({ ...base, requestId: null })).not.toBe(eventId({ ...base, requestId: '' }))
    expect(eventId({ ...base, body: Buffer.from('bucket=b&object=p') })).not.toBe(eventId(base))
    // Length prefixes: moving bytes between the path and the query gives another id.
    expect(eventId({ ...base, path: '/cba', query: '=1' })).not.toBe(eventId(base))
  })
})

describe.each(Object.keys(dialects) as Array<keyof typeof dialects>)('%s store', (dialect) => {
  let clock: FakeClock
  const stores: EventStore[] = []
  const open = async (url?: string, commits?: number[]): Promise<EventStore> => {
    const store = await openEventStore(url ?? await dialects[dialect](), {
      now: () => clock.now(),
      onCommit: commits === undefined ? undefined : ({ writes }) => { commits.push(writes) }
    })
    stores.push(store)
    return store
  }

  beforeAll(() => { clock = fakeClock() })
  afterAll(async () => { for (const s of stores) await s.close() })

  it('appends a pending event due now, and a resent callback (same id) finds the same event', async () => {
    const store = await open()
    const first = await store.append(newEvent(1))
    expect(first.created).toBe(true)
    expect(first.event).toMatchObject({ state: 'pending', attempts: 0, nextAttemptAt: clock.now(), retrySince: clock.now(), answer: null, leaseOwner: null, bucket: 'bucket', objectKey: 'uploads/1.jpg', etag: '"etag1"' })
    // The appended event is built, not read back: it must be the row as stored.
    expect(first.event).toStrictEqual(await store.get(first.event.id))
    const later = await store.append(newEvent(3, { firstAttemptAt: clock.now() + 5000, bucket: null, objectKey: null, etag: null }))
    expect(later.event).toStrictEqual(await store.get(later.event.id))
    await store.finish(first.event.id, 'delivered', attempt(clock.now(), 'delivered', 200), { status: 200, body: Buffer.from('{"ok":1}') })
    clock.advance(1000)
    const again = await store.append(newEvent(1, { envelope: '{"other":true}' }))
    expect(again.created).toBe(false)
    expect(again.event.state).toBe('delivered')
    expect(again.event.envelope).toBe(first.event.envelope)
    expect(again.event.answer).toEqual({ status: 200, body: Buffer.from('{"ok":1}') })
    expect((await store.append(newEvent(2))).created).toBe(true)
  })

  it('pending → delivered: one write records the attempt, the answer, and ends the lease', async () => {
    const store = await open()
    const { event } = await store.append(newEvent(1))
    const [claimed] = await store.claimDue('w1', 10, 30_000)
    expect(claimed).toMatchObject({ id: event.id, leaseOwner: 'w1', leaseExpiresAt: clock.now() + 30_000 })
    expect(await store.finish(event.id, 'delivered', attempt(clock.now(), 'delivered', 200), { status: 200, body: Buffer.from('{}') })).toBe(true)
    const shown = await store.show(event.id)
    expect(shown?.event).toMatchObject({ state: 'delivered', attempts: 1, leaseOwner: null, leaseExpiresAt: null })
    expect(shown?.attempts).toEqual([{ n: 1, at: clock.now(), status: 200, latencyMs: 12, outcome: 'delivered', error: null }])
    // Final: a second outcome for the same event changes nothing.
    expect(await store.finish(event.id, 'dead', null)).toBe(false)
    expect(await store.reschedule(event.id, attempt(clock.now(), 'retry', 500), clock.now() + 5)).toBe(false)
    expect((await store.get(event.id))?.state).toBe('delivered')
  })

  it('pending → (retry) → rejected, and pending → dead, each attempt recorded in order', async () => {
    const store = await open()
    const a = (await store.append(newEvent(1))).event
    const b = (await store.append(newEvent(2))).event
    expect(await store.reschedule(a.id, attempt(clock.now(), 'retry', 503, 'upstream answered 503'), clock.now() + 5000)).toBe(true)
    expect(await store.get(a.id)).toMatchObject({ state: 'pending', attempts: 1, nextAttemptAt: clock.now() + 5000, lastError: 'upstream answered 503' })
    expect(await store.claimDue('w', 10, 60_000)).toEqual([expect.objectContaining({ id: b.id })])
    clock.advance(5000)
    expect((await store.claimDue('w', 10, 1000)).map((e) => e.id)).toEqual([a.id])
    expect(await store.finish(a.id, 'rejected', attempt(clock.now(), 'rejected', 422, 'upstream answered 422'))).toBe(true)
    expect(await store.finish(b.id, 'dead', attempt(clock.now(), 'retry', null, 'connection refused'))).toBe(true)
    const shownA = await store.show(a.id)
    expect(shownA?.event.state).toBe('rejected')
    expect(shownA?.attempts.map((x) => [x.n, x.status, x.outcome])).toEqual([[1, 503, 'retry'], [2, 422, 'rejected']])
    expect((await store.get(b.id))).toMatchObject({ state: 'dead', attempts: 1, lastError: 'connection refused' })
  })

  it('dead → pending by redeliver (by id and by state), due now with a fresh retry window', async () => {
    const store = await open()
    const ids = []
    for (let n = 1; n <= 3; n++) {
      const { event } = await store.append(newEvent(n))
      await store.finish(event.id, 'dead', attempt(clock.now(), 'retry', 500))
      ids.push(event.id)
    }
    clock.advance(60_000)
    expect(await store.redeliver({ ids: [ids[0] as string, 'evt_missing'] })).toBe(1)
    expect(await store.get(ids[0] as string)).toMatchObject({ state: 'pending', nextAttemptAt: clock.now(), retrySince: clock.now(), attempts: 1 })
    expect(await store.redeliver({ ids: [ids[0] as string] })).toBe(0)
    expect(await store.redeliver({ state: 'dead', since: clock.now() + 1 })).toBe(0)
    expect(await store.redeliver({ state: 'dead' })).toBe(2)
    expect((await store.stats()).counts).toEqual({ pending: 3, delivered: 0, rejected: 0, dead: 0 })
  })

  it('a lease hides a claimed event from other claims until it expires', async () => {
    const url = await dialects[dialect]()
    const a = await open(url)
    const b = dialect === 'postgres' ? await open(url) : a
    const { event } = await a.append(newEvent(1))
    expect((await a.claimDue('instance-a', 10, 30_000)).map((e) => e.id)).toEqual([event.id])
    expect(await b.claimDue('instance-b', 10, 30_000)).toEqual([])
    clock.advance(29_999)
    expect(await b.claimDue('instance-b', 10, 30_000)).toEqual([])
    clock.advance(1)
    expect(await b.claimDue('instance-b', 10, 30_000)).toEqual([expect.objectContaining({ id: event.id, leaseOwner: 'instance-b' })])
  })

  it('claims oldest first, at most the limit', async () => {
    const store = await open()
    const ids = []
    for (let n = 1; n <= 5; n++) { ids.push((await store.append(newEvent(n))).event.id); clock.advance(1) }
    expect((await store.claimDue('w', 3, 1000)).map((e) => e.id)).toEqual(ids.slice(0, 3))
    expect((await store.claimDue('w', 3, 1000)).map((e) => e.id)).toEqual(ids.slice(3))
  })

  it('group commit: the appends of one event-loop turn share one transaction, each caller resolving after it', async () => {
    const commits: number[] = []
    const store = await open(undefined, commits)
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.append(newEvent(i))))
    expect(results.every((r) => r.created)).toBe(true)
    expect(commits).toEqual([50])
    await store.append(newEvent(100))
    await store.append(newEvent(101))
    expect(commits).toEqual([50, 1, 1])
  })

  it('lists in pages (keyset, oldest first), by state, since and object prefix; shows stats', async () => {
    const store = await open()
    const start = clock.now()
    for (let n = 0; n < 25; n++) {
      const { event } = await store.append(newEvent(n, { objectKey: n % 2 === 0 ? `even/${n}` : `odd/${n}` }))
      if (n % 5 === 0) await store.finish(event.id, 'dead', null)
      clock.advance(10)
    }
    const seen: string[] = []
    let after: string | undefined
    let pages = 0
    do {
      const page = await store.list({ limit: 10, after })
      seen.push(...page.events.map((e) => e.objectKey ?? ''))
      after = page.next ?? undefined
      pages++
    } while (after !== undefined)
    expect(pages).toBe(3)
    expect(seen).toEqual(Array.from({ length: 25 }, (_, n) => n % 2 === 0 ? `even/${n}` : `odd/${n}`))
    expect((await store.list({ state: 'dead' })).events.map((e) => e.objectKey)).toEqual(['even/0', 'odd/5', 'even/10', 'odd/15', 'even/20'])
    expect((await store.list({ objectPrefix: 'odd/1' })).events.map((e) => e.objectKey)).toEqual(['odd/1', 'odd/11', 'odd/13', 'odd/15', 'odd/17', 'odd/19'])
    expect((await store.list({ objectPrefix: 'ODD/' })).events).toEqual([])
    expect((await store.list({ since: start + 230 })).events.map((e) => e.objectKey)).toEqual(['odd/23', 'even/24'])
    expect(await store.stats()).toEqual({ counts: { pending: 20, delivered: 0, rejected: 0, dead: 5 }, oldestPendingAt: start + 10 })
    expect((await store.findByObject('bucket', 'odd/3')).map((e) => e.etag)).toEqual(['"etag3"'])
  })

  it('retention deletes delivered and rejected events (and their attempts) in small batches, and keeps dead ones', async () => {
    const store = await open()
    for (let n = 0; n < 9; n++) {
      const { event } = await store.append(newEvent(n))
      const state = n < 4 ? 'delivered' : n < 7 ? 'rejected' : 'dead'
      await store.finish(event.id, state, attempt(clock.now(), state === 'delivered' ? 'delivered' : 'rejected', 200))
    }
    const fresh = (await store.append(newEvent(99))).event
    await store.finish(fresh.id, 'delivered', null)
    // Created with the others but delivered 3 days later, after retries: kept 7 days from its delivery.
    const late = (await store.append(newEvent(98))).event
    clock.advance(3 * 86_400_000)
    await store.finish(late.id, 'delivered', attempt(clock.now(), 'delivered', 200))
    clock.advance(4 * 86_400_000)
    const recent = (await store.append(newEvent(100))).event
    await store.finish(recent.id, 'delivered', null)
    const before = clock.now() - 7 * 86_400_000 + 1
    const batches = []
    for (let n = -1; n !== 0;) { n = await store.deleteExpired(before, 3); batches.push(n) }
    expect(batches).toEqual([3, 3, 2, 0])
    expect((await store.stats()).counts).toEqual({ pending: 0, delivered: 2, rejected: 0, dead: 2 })
    expect((await store.get(late.id))?.state).toBe('delivered')
    clock.advance(3 * 86_400_000)
    expect(await store.deleteExpired(clock.now() - 7 * 86_400_000 + 1)).toBe(1)
    expect(await store.get(late.id)).toBeNull()
    expect(await store.purge('dead', clock.now() + 1, 1)).toBe(1)
    expect(await store.purge('dead', clock.now() + 1, 1)).toBe(1)
    expect((await store.stats()).counts.dead).toBe(0)
  })

  it('a retention pass deletes in batches of the given size until none is left, keeping dead and recent events', async () => {
    const store = await open()
    for (let n = 0; n < 12; n++) {
      const { event } = await store.append(newEvent(n))
      await store.finish(event.id, n === 0 ? 'dead' : n % 2 === 0 ? 'delivered' : 'rejected', null)
    }
    clock.advance(2 * 86_400_000)
    const recent = (await store.append(newEvent(50))).event
    await store.finish(recent.id, 'delivered', null)
    const commits: number[] = []
    const spy: EventStore = { ...store, deleteExpired: async (before, size) => { const n = await store.deleteExpired(before, size); commits.push(n); return n } } as EventStore
    expect(await deleteExpiredEvents(spy, { retentionMs: 86_400_000, batchSize: 4, now: clock.now })).toBe(11)
    expect(commits).toEqual([4, 4, 3])
    expect((await store.stats()).counts).toEqual({ pending: 0, delivered: 1, rejected: 0, dead: 1 })
  })

  it('probe commits a write', async () => {
    const store = await open()
    await expect(store.probe()).resolves.toBeUndefined()
  })
})

describe('postgres store', () => {
  it('SKIP LOCKED: a claim passes over rows another transaction holds, without waiting for it', async () => {
    const url = await fixture.postgres().createDatabase()
    const store = await openEventStore(url)
    const ids = []
    for (let n = 0; n < 6; n++) ids.push((await store.append(newEvent(n, { firstAttemptAt: 1000 + n }))).event.id)
    const other = new pg.Client(url)
    await other.connect()
    try {
      await other.query('BEGIN')
      await other.query('SELECT id FROM oss_callback_events WHERE id = ANY($1) FOR UPDATE', [ids.slice(0, 2)])
      const claimed = await store.claimDue('b', 10, 30_000)
      expect(claimed.map((e) => e.id).sort()).toEqual(ids.slice(2).sort())
      await other.query('COMMIT')
      expect((await store.claimDue('b', 10, 30_000)).map((e) => e.id).sort()).toEqual(ids.slice(0, 2).sort())
    } finally {
      await other.end()
      await store.close()
    }
  })

  it('two instances claiming at once never get the same event', async () => {
    const url = await fixture.postgres().createDatabase()
    const a = await openEventStore(url)
    const b = await openEventStore(url)
    try {
      await Promise.all(Array.from({ length: 200 }, (_, n) => a.append(newEvent(n))))
      const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).claimDue(`w${i}`, 15, 30_000)))
      const all = claims.flat().map((e) => e.id)
      expect(new Set(all).size).toBe(all.length)
      expect(all.length).toBe(200)
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('refuses a database whose store has a newer schema, in one line', async () => {
    const url = await fixture.postgres().createDatabase()
    await (await openEventStore(url)).close()
    const client = new pg.Client(url)
    await client.connect()
    await client.query("UPDATE oss_callback_meta SET value = '99' WHERE name = 'schema_version'")
    await client.end()
    const err = await refusal(openEventStore(url))
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_STORE_UNUSABLE' })
    expect(err.message).toMatch(/schema version 99, newer than this oss-callback's 2/)
    expect(err.message).not.toContain('\n')
  })

  it('refuses an unreachable server in one line, without the password', async () => {
    const err = await refusal(openEventStore(`postgres://u:secret@127.0.0.1:${fixture.postgres().port + 1}/x`, { connectTimeoutMs: 2000 }))
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_STORE_UNUSABLE' })
    expect(err.message).toMatch(/cannot connect to PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1/)
    expect(err.message).not.toContain('secret')
  })

  it('while PostgreSQL is down, writes reject with STORE_FAILED; when it returns, the same store recovers by itself', async () => {
    const url = await fixture.postgres().createDatabase()
    const store = await openEventStore(url, { connectTimeoutMs: 1000 })
    try {
      await store.append(newEvent(1))
      await fixture.postgres().pause()
      await expect(store.append(newEvent(2))).rejects.toMatchObject({ code: 'OSS_CB_ERR_STORE_FAILED', statusCode: 503 })
      await expect(store.probe()).rejects.toMatchObject({ code: 'OSS_CB_ERR_STORE_FAILED' })
      await expect(store.stats()).rejects.toMatchObject({ code: 'OSS_CB_ERR_STORE_FAILED' })
      await fixture.postgres().resume()
      await expect(store.probe()).resolves.toBeUndefined()
      expect((await store.append(newEvent(2))).created).toBe(true)
      expect((await store.stats()).counts.pending).toBe(2)
    } finally {
      await store.close()
    }
  }, 60_000)

  // pg emits a connection's error on the client itself while the client is checked out; with no listener
  // that is an uncaught exception, and the receiver died when PostgreSQL restarted during a sweep.
  it('regression: PostgreSQL restarting while a connection is held (the sweep lock) rejects the sweep, and the process lives on', async () => {
    const url = await fixture.postgres().createDatabase()
    const store = await openEventStore(url, { connectTimeoutMs: 1000 })
    const uncaught: unknown[] = []
    const onUncaught = (err: unknown): void => { uncaught.push(err) }
    process.prependListener('uncaughtException', onUncaught)
    try {
      let locked = (): void => {}
      const holding = new Promise<void>((resolve) => { locked = resolve })
      const sweep = store.withSweepLock(async () => { locked(); await new Promise((resolve) => setTimeout(resolve, 1500)); return 'swept' })
      await holding
      await fixture.postgres().pause()
      await sweep.catch(() => {})
      await fixture.postgres().resume()
      expect(uncaught).toEqual([])
      await expect(store.probe()).resolves.toBeUndefined()
      expect(await store.withSweepLock(async () => 'again')).toEqual({ ran: true, value: 'again' })
    } finally {
      process.removeListener('uncaughtException', onUncaught)
      await store.close()
    }
  }, 60_000)

  it('create: false refuses a database without a store', async () => {
    const url = await fixture.postgres().createDatabase()
    await expect(openEventStore(url, { create: false })).rejects.toThrow(/no event store in/)
  })
})

describe('sqlite store', () => {
  const path = (name: string): string => join(fixture.dir(), name)

  // A Node process that opens the store at `file` as `store`, runs `body` and ends as it will (killed after 15 s).
  async function runStoreScript (file: string, body: string): Promise<{ code: number | string, stdout: string, stderr: string }> {
    const script = `import { openSqliteStore } from './dist/events/sqlite.js'
      const store = await openSqliteStore(${JSON.stringify(file)})
      ${body}`
    const child = runCli(['--input-type=module', '-e', script], {}, { raw: true })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 15_000)
    const code = await child.exited
    clearTimeout(timer)
    return { code, stdout: child.stdout(), stderr: child.stderr() }
  }

  it('runs in WAL mode; commits run with synchronous=NORMAL, and the store flushes the log itself', async () => {
    const store = await openSqliteStore(path('pragmas.sqlite'))
    try {
      expect(await store.pragma('journal_mode', { simple: true })).toBe('wal')
      expect(await store.pragma('synchronous', { simple: true })).toBe(1)
    } finally { await store.close() }
  })

  it('checkpoints run on a thread of their own: the log reaches the database file while the writer\'s own checkpoint is far off', async () => {
    const file = path('checkpoint.sqlite')
    const store = await openSqliteStore(file)
    try {
      // The writer checkpoints by itself only as a backstop, after 4000 pages of log.
      expect(await store.pragma('wal_autocheckpoint', { simple: true })).toBe(4000)
      const before = statSync(file).size
      await Promise.all(Array.from({ length: 200 }, (_, n) => store.append(newEvent(n, { envelope: 'e'.repeat(1000) }))))
      // About 70 pages of log: only the checkpoint thread copies them into the file meanwhile.
      const deadline = Date.now() + 5000
      while (statSync(file).size <= before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
      expect(statSync(file).size).toBeGreaterThan(before + 200 * 1000)
    } finally { await store.close() }
  })

  it('a full store rejects every caller of the batch with STORE_FAILED, then recovers by itself when writable again', async () => {
    const commits: Array<{ writes: number, error?: Error }> = []
    const store = await openSqliteStore(path('full.sqlite'), { onCommit: (c) => { commits.push(c) } })
    try {
      await store.append(newEvent(0))
      const pages = await store.pragma('page_count', { simple: true }) as number
      await store.pragma(`max_page_count = ${pages}`)
      const big = 'x'.repeat(64 * 1024)
      const results = await Promise.allSettled([1, 2, 3].map((n) => store.append(newEvent(n, { envelope: JSON.stringify({ big, n }) }))))
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected'])
      for (const r of results) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'OSS_CB_ERR_STORE_FAILED', statusCode: 503 })
      expect(commits.at(-1)?.error?.message).toMatch(/full/)
      // /readyz reads the probe: it fails while the store is full.
      await expect(store.probe()).rejects.toMatchObject({ code: 'OSS_CB_ERR_STORE_FAILED' })
      await store.pragma('max_page_count = 1000000')
      await expect(store.probe()).resolves.toBeUndefined()
      const again = await Promise.all([1, 2, 3].map((n) => store.append(newEvent(n, { envelope: JSON.stringify({ big, n }) }))))
      expect(again.map((r) => r.created)).toEqual([true, true, true])
      expect((await store.stats()).counts.pending).toBe(4)
    } finally { await store.close() }
  })

  it('a batch that holds a callback is durable (the writer flushes the log before it answers); a batch of delivery outcomes only is not', async () => {
    const file = path('modes.sqlite')
    const batches: Array<{ writes: number, durable: boolean, flushes: number }> = []
    const store = await openSqliteStore(file, { onCommit: (c) => { batches.push({ writes: c.writes, durable: c.durable, flushes: writer.flushes }) } })
    // The writer counts the fsyncs it made of the log, each before it answered its batch.
    const writer = (store as unknown as { writer: SqliteWriter }).writer
    try {
      const a = (await store.append(newEvent(1))).event
      expect(batches).toEqual([{ writes: 1, durable: true, flushes: 1 }])
      // A delivery outcome alone: not flushed.
      await store.finish(a.id, 'delivered', attempt(0, 'delivered', 200))
      expect(batches.at(-1)).toEqual({ writes: 1, durable: false, flushes: 1 })
      // An outcome batched with an append: flushed, as the append needs.
      const b = (await store.append(newEvent(2))).event
      await Promise.all([store.finish(b.id, 'delivered', attempt(0, 'delivered', 200)), store.append(newEvent(3))])
      expect(batches.at(-1)).toEqual({ writes: 2, durable: true, flushes: 3 })
      // A claim is prompt, not durable; a final state set by hand (the events CLI) is durable.
      await store.claimDue('owner', 10, 30_000)
      expect(batches.at(-1)).toEqual({ writes: 1, durable: false, flushes: 3 })
      const three = (await store.get(eventId({ path: '/cb', query: '', body: Buffer.from('body 3'), requestId: 'req-3' })))?.id ?? ''
      await store.finish(three, 'rejected', null)
      expect(batches.at(-1)).toEqual({ writes: 1, durable: true, flushes: 4 })
      // The reader on this thread sees what the writer committed.
      expect(store.database.prepare("SELECT COUNT(*) AS n FROM oss_callback_events WHERE state = 'delivered'").get()).toEqual({ n: 2 })
    } finally { await store.close() }
  })

  it('refuses a file that is not SQLite, in one line naming the file', async () => {
    const file = path('foreign.txt')
    writeFileSync(file, 'hello, this is not a database\n'.repeat(200))
    const err = await refusal(openEventStore(`sqlite:${file}`))
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_STORE_UNUSABLE' })
    expect(err.message).toContain(file)
    expect(err.message).toMatch(/not an oss-callback event store/)
    expect(err.message).not.toContain('\n')
    expect(readFileSync(file, 'utf8').startsWith('hello')).toBe(true)
  })

  it('refuses a store whose pages are corrupt, in one line naming the file', async () => {
    const file = path('corrupt.sqlite')
    const store = await openSqliteStore(file)
    await Promise.all(Array.from({ length: 200 }, (_, n) => store.append(newEvent(n))))
    await store.close()
    const bytes = readFileSync(file)
    expect(bytes.length).toBeGreaterThan(8192)
    // Keep the header and the first page, scribble over the rest.
    bytes.fill(0xa5, 4096 + 100)
    writeFileSync(file, bytes)
    const err = await refusal(openEventStore(`sqlite:${file}`))
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_STORE_UNUSABLE' })
    expect(err.message).toContain(file)
    expect(err.message).toMatch(/corrupt/)
    expect(err.message).not.toContain('\n')
  })

  it('refuses a store whose header reads well but whose later pages are damaged (checked at open)', async () => {
    const file = path('corrupt-tail.sqlite')
    const store = await openSqliteStore(file)
    await Promise.all(Array.from({ length: 400 }, (_, n) => store.append(newEvent(n))))
    await store.close()
    const bytes = readFileSync(file)
    const pageSize = 4096
    const pages = bytes.length / pageSize
    expect(pages).toBeGreaterThan(40)
    // Scribble over the page bodies of the last quarter, past every table's root page.
    for (let p = Math.floor(pages * 0.75); p < pages; p++) bytes.fill(0x5a, p * pageSize + 16, (p + 1) * pageSize)
    writeFileSync(file, bytes)
    const err = await refusal(openEventStore(`sqlite:${file}`))
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_STORE_UNUSABLE' })
    expect(err.message.startsWith(`Event store unusable: ${file} is corrupt`)).toBe(true)
    expect(err.message).not.toContain('\n')
  })

  it('a store nobody closed does not keep its process alive: the writer thread holds it only while a write is out', async () => {
    const file = path('unclosed.sqlite')
    const child = await runStoreScript(file, `const { created } = await store.append({ id: 'evt_unclosed', type: 'oss.callback.verified', bucket: null, objectKey: null, etag: null, envelope: '{}' })
      console.log('appended', created)`)
    expect(child.code, child.stderr).toBe(0)
    expect(child.stdout).toBe('appended true\n')
    const store = await openSqliteStore(file)
    try { expect((await store.get('evt_unclosed'))?.state).toBe('pending') } finally { await store.close() }
  })

  it('regression: closing a store is the last thing a process awaits, and the close still completes (exit 0, not 13)', async () => {
    const child = await runStoreScript(path('closed-last.sqlite'), `await store.append({ id: 'evt_closed', type: 'oss.callback.verified', bucket: null, objectKey: null, etag: null, envelope: '{}' })
      await store.close()
      console.log('closed')`)
    expect(child.code, child.stderr).toBe(0)
    expect(child.stdout).toBe('closed\n')
  })

  it('refuses an SQLite database of another application', async () => {
    const file = path('other-app.sqlite')
    const Database = (await import('better-sqlite3')).default
    const db = new Database(file)
    db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY)')
    db.close()
    await expect(openEventStore(`sqlite:${file}`)).rejects.toThrow(`${file} is an SQLite database of something else, not an oss-callback event store`)
  })

  it('upgrades a version 1 store in place: its events are kept, and claims and sweeps read the new indexes', async () => {
    const file = path('v1.sqlite')
    const Database = (await import('better-sqlite3')).default
    const db = new Database(file)
    db.exec(metaTable())
    for (const sql of migrations('sqlite')[0] ?? []) db.exec(sql)
    db.prepare(SQL.setVersion).run('1')
    db.prepare(SQL.insert).run('evt_v1', 'oss.callback.verified', 'bucket', 'uploads/v1.jpg', null, '{}', 1000, 1000, 1000, 1000)
    db.close()
    const store = await openSqliteStore(file, { now: () => 2000 })
    try {
      expect(store.database.prepare(SQL.readVersion).get()).toEqual({ value: '2' })
      const plan = (sql: string, ...params: unknown[]): string =>
        (store.database.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail).join(' | ')
      // A claim walks the pending events' index in due order; it never sorts the log.
      expect(plan(SQL.claim(''), 'w', 1, 1, 1, 1)).toMatch(/USING INDEX oss_callback_events_due \(state=\? AND next_attempt_at<\?\)/)
      expect(plan(SQL.claim(''), 'w', 1, 1, 1, 1)).not.toContain('TEMP B-TREE')
      expect(plan(SQL.expire, 1, 1, 1)).toContain('USING INDEX oss_callback_events_state_created (state=? AND created_at<?)')
      expect(plan(SQL.purge, 'dead', 1, 1, 1)).toContain('USING INDEX oss_callback_events_state_created (state=? AND created_at<?)')
      const [claimed] = await store.claimDue('w1', 10, 30_000)
      expect(claimed).toMatchObject({ id: 'evt_v1', objectKey: 'uploads/v1.jpg', leaseOwner: 'w1' })
      expect(await store.finish('evt_v1', 'delivered', null)).toBe(true)
      expect(await store.claimDue('w1', 10, 30_000)).toEqual([])
      expect(await store.deleteExpired(2001)).toBe(1)
    } finally {
      await store.close()
    }
  })

  it('refuses a store from a newer schema version, in one line', async () => {
    const file = path('newer.sqlite')
    const store = await openSqliteStore(file)
    store.database.prepare("UPDATE oss_callback_meta SET value = '3' WHERE name = 'schema_version'").run()
    await store.close()
    await expect(openEventStore(`sqlite:${file}`)).rejects.toThrow(`${file} has event store schema version 3, newer than this oss-callback's 2: upgrade oss-callback`)
  })

  it('create: false never creates a store: a missing file is refused and stays missing', async () => {
    const file = path('missing/none.sqlite')
    await expect(openEventStore(`sqlite:${file}`, { create: false })).rejects.toThrow(`no event store at ${file}`)
    expect(existsSync(file)).toBe(false)
  })

  it('a missing driver is refused with one line naming the package to install', async () => {
    await expect(loadDriver('oss-callback-no-such-driver', 'sqlite:')).rejects.toThrow(
      'Event store unusable: sqlite: stores need the oss-callback-no-such-driver package, which is not installed: npm install oss-callback-no-such-driver')
  })

  it('an unknown URL scheme is an invalid option', async () => {
    await expect(openEventStore('mysql://x')).rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION' })
  })
})
