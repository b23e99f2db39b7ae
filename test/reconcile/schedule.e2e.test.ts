import type OSS from 'ali-oss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openEventStore } from '../../src/events/open.js'
import type { EventStore } from '../../src/events/store.js'
import type { BucketReader } from '../../src/reconcile/oss.js'
import { startReconcileSchedule, type SweepInfo } from '../../src/reconcile/schedule.js'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import { fakeClock } from '../helpers/clock.js'
import { startPostgresServer, type PostgresServer } from '../helpers/postgres-server.js'
import { aliOssClient } from '../sim/stack.js'

const BUCKET = 'schedbucket'
let sim: Simulator
let client: OSS
let postgres: PostgresServer
const stores: EventStore[] = []

beforeAll(async () => {
  sim = await startSimulator({ port: 0 })
  client = aliOssClient(sim, BUCKET)
  postgres = await startPostgresServer()
  for (let i = 0; i < 5; i++) await client.put(`s/${i}.txt`, Buffer.from(`s${i}`))
}, 60_000)
afterAll(async () => {
  for (const s of stores) await s.close()
  await postgres?.stop()
  await sim?.close()
}, 60_000)

const open = async (url: string): Promise<EventStore> => {
  const store = await openEventStore(url)
  stores.push(store)
  return store
}

/** A reader whose listings wait for `gate` (a sweep that takes as long as the test wants). */
function gatedReader (gate: Promise<void>, listings: { n: number }): BucketReader {
  const real = aliOssClient(sim, BUCKET) as unknown as BucketReader
  return {
    listV2: async (q, o) => { listings.n++; await gate; return await real.listV2(q, o) },
    head: async (name, o) => await real.head(name, o)
  }
}

const credentials = { accessKeyId: 'unused', accessKeySecret: 'unused' }

describe('reconcile schedule', () => {
  it('with PostgreSQL, one instance sweeps at a time; the other skips its turn; hooks report each sweep', async () => {
    const url = await postgres.createDatabase()
    const [a, b] = [await open(url), await open(url)]
    const clock = fakeClock(Date.now() + 10 * 60_000)
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const listings = { n: 0 }
    const sweeps: Array<{ who: string, info: SweepInfo }> = []
    const busy: string[] = []
    const common = { everyMs: 60_000, prefixes: ['s/'], bucket: BUCKET, credentials, clock }
    const stopA = startReconcileSchedule({ ...common, store: a, reader: gatedReader(gate, listings), onSweep: (info) => sweeps.push({ who: 'a', info }), onLockBusy: () => busy.push('a') })
    while (listings.n === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    // A holds the lock, waiting on its listing; B's turn finds it held.
    const stopB = startReconcileSchedule({ ...common, store: b, reader: gatedReader(Promise.resolve(), listings), onSweep: (info) => sweeps.push({ who: 'b', info }), onLockBusy: () => busy.push('b') })
    expect(await clock.nextSleep()).toBe(60_000)
    expect(busy).toEqual(['b'])
    expect(sweeps).toEqual([])
    release()
    expect(await clock.nextSleep()).toBe(60_000)
    expect(sweeps).toHaveLength(1)
    expect(sweeps[0]).toMatchObject({ who: 'a', info: { listed: 5, matched: 0, new: 5, skipped: 0, finishedAt: clock.now() } })
    expect(sweeps[0]!.info.seconds).toBeGreaterThan(0)
    expect((await a.stats()).counts.pending).toBe(5)
    // The next turn, the lock now free: whichever instance's timer fires first sweeps, and records nothing new.
    clock.advance(60_000)
    while (sweeps.length < 2) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(sweeps[1]).toMatchObject({ info: { listed: 5, matched: 5, new: 0 } })
    expect(['a', 'b']).toContain(sweeps[1]!.who)
    await stopA()
    await stopB()
  }, 60_000)

  it('a failed sweep is reported and tried again at the next turn; stop ends the schedule', async () => {
    const store = await open(await postgres.createDatabase())
    const clock = fakeClock(Date.now() + 10 * 60_000)
    const errors: unknown[] = []
    const sweeps: SweepInfo[] = []
    let fail = true
    const real = aliOssClient(sim, BUCKET) as unknown as BucketReader
    const reader: BucketReader = {
      listV2: async (q, o) => { if (fail) throw new Error('AccessDenied'); return await real.listV2(q, o) },
      head: async (name, o) => await real.head(name, o)
    }
    const stop = startReconcileSchedule({ store, everyMs: 5000, prefixes: ['s/'], bucket: BUCKET, credentials, clock, reader, onError: (e) => errors.push(e), onSweep: (i) => sweeps.push(i) })
    expect(await clock.nextSleep()).toBe(5000)
    expect(errors).toHaveLength(1)
    fail = false
    clock.advance(5000)
    expect(await clock.nextSleep()).toBe(5000)
    expect(sweeps).toMatchObject([{ listed: 5, new: 5 }])
    await stop()
    clock.advance(5000)
    expect(sweeps).toHaveLength(1)
  }, 60_000)

  it('refuses a window longer than the retention, or a settle time not shorter than the window', async () => {
    const store = await open(await postgres.createDatabase())
    const base = { store, everyMs: 600_000, prefixes: ['s/'], bucket: BUCKET, credentials, endpoint: sim.origin }
    expect(() => startReconcileSchedule({ ...base, windowMs: 8 * 86_400_000, retentionMs: 7 * 86_400_000 })).toThrow(/window must not reach further back than the event log's retention/)
    expect(() => startReconcileSchedule({ ...base, windowMs: 60_000, settleMs: 120_000 })).toThrow(/settle time must be shorter than its window/)
    expect(() => startReconcileSchedule({ ...base, prefixes: [] })).toThrow(/at least one prefix/)
  })
})
