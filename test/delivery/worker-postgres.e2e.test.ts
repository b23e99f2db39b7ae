import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDeliveryWorker } from '../../src/delivery/worker.js'
import { openEventStore } from '../../src/events/open.js'
import { eventId, type EventStore } from '../../src/events/store.js'
import { startPostgresServer, type PostgresServer } from '../helpers/postgres-server.js'
import { answerJson, startUpstream, type Upstream } from '../helpers/upstream.js'

const SECRET = 'whsec_' + Buffer.alloc(32, 9).toString('base64')
let postgres: PostgresServer
let upstream: Upstream

beforeAll(async () => {
  postgres = await startPostgresServer()
  upstream = await startUpstream(answerJson('{"ok":true}'))
}, 60_000)
afterAll(async () => {
  await upstream?.close()
  await postgres?.stop()
}, 60_000)

describe('two workers on one PostgreSQL log', () => {
  it('deliver every event once between them (claims with SKIP LOCKED and leases)', async () => {
    const url = await postgres.createDatabase()
    const stores: EventStore[] = [await openEventStore(url), await openEventStore(url)]
    const total = 300
    await Promise.all(Array.from({ length: total }, (_, n) => (stores[0] as EventStore).append({
      id: eventId({ path: '/cb', query: '', body: Buffer.from(`o=${n}`), requestId: `r${n}` }),
      type: 'oss.callback.verified', bucket: 'b', objectKey: `k/${n}`, etag: null, envelope: `{"n":${n}}`
    })))
    let delivered = 0
    let done: () => void = () => {}
    const finished = new Promise<void>((resolve) => { done = resolve })
    const byWorker = [0, 0]
    const workers = stores.map((store, i) => createDeliveryWorker({
      store, url: upstream.url('/hook'), secret: SECRET, owner: `instance-${i}`, concurrency: 8, claimBatch: 10,
      onAttempt: ({ result }) => {
        if (result.state === 'delivered') { delivered++; byWorker[i] = (byWorker[i] ?? 0) + 1 }
        if (delivered === total) done()
      }
    }))
    try {
      for (const w of workers) w.start()
      await finished
      const ids = upstream.received.map((r) => r.headers['webhook-id'])
      expect(ids.length).toBe(total)
      expect(new Set(ids).size).toBe(total)
      expect(byWorker.every((n) => n > 0)).toBe(true)
      expect((await (stores[1] as EventStore).stats()).counts).toMatchObject({ pending: 0, delivered: total })
    } finally {
      for (const w of workers) await w.close()
      for (const s of stores) await s.close()
    }
  }, 60_000)
})
