import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Webhook } from 'standardwebhooks'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createDeliveryWorker, type DeliveryWorker, type DeliveryWorkerOptions } from '../../src/delivery/worker.js'
import { openSqliteStore, type SqliteEventStore } from '../../src/events/sqlite.js'
import { eventId, type NewEvent } from '../../src/events/store.js'
import { fakeClock, type FakeClock } from '../helpers/clock.js'
import { answerJson, startUpstream, type Upstream, type UpstreamBehaviour } from '../helpers/upstream.js'

const SECRET = 'whsec_' + Buffer.alloc(32, 7).toString('base64')

let dir: string
let files = 0
let upstream: Upstream
let clock: FakeClock
let store: SqliteEventStore
const workers: DeliveryWorker[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oss-cb-delivery-'))
  upstream = await startUpstream()
})
afterAll(async () => {
  await upstream.close()
  rmSync(dir, { recursive: true, force: true })
})

async function setup (behaviour: UpstreamBehaviour, options: Partial<DeliveryWorkerOptions> = {}): Promise<DeliveryWorker> {
  // A recent start: standardwebhooks checks timestamps against the real time.
  clock = fakeClock(Math.floor(Date.now() / 1000) * 1000)
  store = await openSqliteStore(join(dir, `w-${++files}.sqlite`), { now: clock.now })
  upstream.behave(behaviour)
  upstream.received.length = 0
  const worker = createDeliveryWorker({
    store, url: upstream.url('/hook'), secret: SECRET, clock, jitter: 0, timeoutMs: 2000, ...options
  })
  workers.push(worker)
  return worker
}

afterEach(async () => {
  for (const w of workers.splice(0)) await w.close()
  await store?.close()
})

function newEvent (n: number, over: Partial<NewEvent> = {}): NewEvent {
  return {
    id: eventId({ path: '/cb', query: '', body: Buffer.from(`object=${n}`), requestId: `r${n}` }),
    type: 'oss.callback.verified', bucket: 'b', objectKey: `k/${n}`, etag: null,
    envelope: JSON.stringify({ type: 'oss.callback.verified', data: { n } }),
    ...over
  }
}

const ok = answerJson('{"Status":"OK","app":1}')
const status = (code: number): UpstreamBehaviour => answerJson('{"error":"x"}', code)

/** Holds every request until `release` is called; `arrived(n)` resolves when n are held. */
function holdingApp (): { behaviour: UpstreamBehaviour, release: () => void, arrived: (n: number) => Promise<void>, held: () => number } {
  const held: Array<() => void> = []
  let waiter: { n: number, resolve: () => void } | undefined
  return {
    behaviour: (req, res) => {
      held.push(() => ok(req, res))
      if (waiter !== undefined && held.length >= waiter.n) { waiter.resolve(); waiter = undefined }
    },
    release: () => { for (const r of held.splice(0)) r() },
    arrived: (n) => new Promise((resolve) => { if (held.length >= n) resolve(); else waiter = { n, resolve } }),
    held: () => held.length
  }
}

describe('attemptNow', () => {
  it('delivered: relays the app bytes, records them as the answer, signed with webhook-id = event id', async () => {
    const worker = await setup(ok)
    const { event } = await store.append(newEvent(1))
    const result = await worker.attemptNow(event, { timeLeftMs: 3000 })
    expect(result).toMatchObject({ outcome: 'delivered', reason: 'ok', status: 200, state: 'delivered', error: null })
    expect(result.body?.toString()).toBe('{"Status":"OK","app":1}')
    const req = upstream.received[0]
    expect(req?.headers['webhook-id']).toBe(event.id)
    expect(req?.body.toString()).toBe(event.envelope)
    expect(() => new Webhook(SECRET).verify(req?.body.toString() ?? '', req?.headers as Record<string, string>)).not.toThrow()
    const shown = await store.show(event.id)
    expect(shown?.event).toMatchObject({ state: 'delivered', attempts: 1, answer: { status: 200, body: Buffer.from('{"Status":"OK","app":1}') } })
    expect(shown?.attempts[0]).toMatchObject({ n: 1, status: 200, outcome: 'delivered', error: null })
  })

  it('rejected: a deliberate 4xx is final and never retried', async () => {
    const worker = await setup(status(422))
    const { event } = await store.append(newEvent(1))
    expect(await worker.attemptNow(event, { timeLeftMs: 3000, answer: () => ({ status: 502, body: Buffer.from('{"code":"x"}') }) }))
      .toMatchObject({ outcome: 'rejected', status: 422, state: 'rejected', body: null })
    expect((await store.get(event.id))?.answer?.status).toBe(502)
    worker.start()
    clock.advance(86_400_000)
    expect(await clock.nextSleep()).toBe(1000)
    expect(upstream.received.length).toBe(1)
  })

  it('a failed first attempt is retried in the background with the same webhook-id and a fresh timestamp and signature', async () => {
    const worker = await setup(status(503))
    const { event } = await store.append(newEvent(1))
    const first = await worker.attemptNow(event, { timeLeftMs: 3000 })
    expect(first).toMatchObject({ outcome: 'retry', reason: 'bad_status', status: 503, state: 'pending', nextAttemptAt: clock.now() + 5000 })
    upstream.behave(ok)
    worker.start()
    expect(await clock.nextSleep()).toBe(1000)
    expect(upstream.received.length).toBe(1)
    clock.advance(5000)
    expect(await clock.nextSleep()).toBe(1000)
    expect(upstream.received.length).toBe(2)
    const [a, b] = upstream.received
    expect(b?.headers['webhook-id']).toBe(a?.headers['webhook-id'])
    expect(Number(b?.headers['webhook-timestamp'])).toBe(Number(a?.headers['webhook-timestamp']) + 5)
    expect(b?.headers['webhook-signature']).not.toBe(a?.headers['webhook-signature'])
    const shown = await store.show(event.id)
    expect(shown?.event.state).toBe('delivered')
    expect(shown?.attempts.map((x) => [x.status, x.outcome])).toEqual([[503, 'retry'], [200, 'delivered']])
  })

  it('a 200 that is not JSON, and one over 1 MB, are failures to retry', async () => {
    const worker = await setup(answerJson('not json'))
    const a = (await store.append(newEvent(1))).event
    expect(await worker.attemptNow(a, { timeLeftMs: 3000 })).toMatchObject({ outcome: 'retry', reason: 'bad_reply', state: 'pending' })
    upstream.behave(answerJson(Buffer.alloc(1024 * 1024 + 10, 0x20)))
    const b = (await store.append(newEvent(2))).event
    expect(await worker.attemptNow(b, { timeLeftMs: 3000 })).toMatchObject({ outcome: 'retry', reason: 'too_large', state: 'pending' })
  })

  it('times out against an app that never answers, within the time left', async () => {
    const worker = await setup(() => {})
    const { event } = await store.append(newEvent(1))
    const started = performance.now()
    expect(await worker.attemptNow(event, { timeLeftMs: 150 })).toMatchObject({ outcome: 'retry', reason: 'timeout', status: null, state: 'pending' })
    expect(performance.now() - started).toBeLessThan(1500)
    expect((await store.show(event.id))?.attempts[0]).toMatchObject({ status: null, outcome: 'retry', error: 'app did not answer in time' })
  })

  it('connection refused and reset are failures to retry', async () => {
    const closed: Server = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as { port: number }).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const worker = await setup(ok, { url: `http://127.0.0.1:${port}/hook` })
    const { event } = await store.append(newEvent(1))
    expect(await worker.attemptNow(event, { timeLeftMs: 3000 })).toMatchObject({ outcome: 'retry', reason: 'unreachable', error: 'app unreachable (ECONNREFUSED)' })

    const worker2 = await setup((req, res) => { res.socket?.destroy() })
    const e2 = (await store.append(newEvent(2))).event
    expect(await worker2.attemptNow(e2, { timeLeftMs: 3000 })).toMatchObject({ outcome: 'retry', reason: 'unreachable', error: 'app unreachable (ECONNRESET)' })
  })

  it('an attempt cut short by the callback deadline stays pending and does not count against the app', async () => {
    const worker = await setup(() => {}, { backoffThreshold: 1 })
    const { event } = await store.append(newEvent(1))
    const deadline = new AbortController()
    const pending = worker.attemptNow(event, { timeLeftMs: 3000, signal: deadline.signal })
    await new Promise<void>((resolve) => { const t = setInterval(() => { if (upstream.received.length > 0) { clearInterval(t); resolve() } }, 5) })
    deadline.abort()
    expect(await pending).toMatchObject({ outcome: 'retry', reason: 'aborted', state: 'pending' })
    expect(worker.backoff.open).toBe(false)
  })

  // The server closes the worker once its sockets are gone, while a callback whose client left may
  // still be in its handler: its attempt failed with UND_ERR_DESTROYED when close destroyed the pool.
  it('regression: close() waits for a callback\'s attempt in flight, and one that comes after close is left pending without a request', async () => {
    const app = holdingApp()
    const worker = await setup(app.behaviour)
    const first = (await store.append(newEvent(1))).event
    const second = (await store.append(newEvent(2))).event
    const inFlight = worker.attemptNow(first, { timeLeftMs: 3000 })
    await app.arrived(1)
    let closed = false
    const closing = worker.close().then(() => { closed = true })
    await new Promise((resolve) => setImmediate(resolve))
    expect(closed).toBe(false)
    const late = await worker.attemptNow(second, { timeLeftMs: 3000 })
    expect(late).toMatchObject({ outcome: 'retry', reason: 'aborted', status: null, state: 'pending' })
    app.release()
    expect(await inFlight).toMatchObject({ outcome: 'delivered', state: 'delivered' })
    await closing
    expect(upstream.received.length).toBe(1)
    expect((await store.get(second.id))?.state).toBe('pending')
  })
})

describe('background delivery', () => {
  it('pending → dead when the retry window is spent; dead → pending → delivered by redeliver', async () => {
    const worker = await setup(status(500), { retryScheduleMs: [5000], retryForMs: 20_000, backoffThreshold: 1000 })
    const { event } = await store.append(newEvent(1))
    worker.start()
    for (let i = 0; i < 5; i++) {
      expect(await clock.nextSleep()).toBe(1000)
      clock.advance(5000)
    }
    expect(await clock.nextSleep()).toBe(1000)
    const shown = await store.show(event.id)
    expect(shown?.event).toMatchObject({ state: 'dead', attempts: 5 })
    expect(shown?.attempts.map((a) => a.at - event.createdAt)).toEqual([0, 5000, 10_000, 15_000, 20_000])
    clock.advance(86_400_000)
    expect(await clock.nextSleep()).toBe(1000)
    expect(upstream.received.length).toBe(5)
    upstream.behave(ok)
    expect(await store.redeliver({ state: 'dead' })).toBe(1)
    clock.advance(1000)
    expect(await clock.nextSleep()).toBe(1000)
    expect(await store.get(event.id)).toMatchObject({ state: 'delivered', attempts: 6 })
  })

  it('with a backlog, claims the next batch while the last of this one is still out, so no slot waits for a claim', async () => {
    const app = holdingApp()
    const worker = await setup(app.behaviour, { concurrency: 2, claimBatch: 4 })
    for (let n = 0; n < 8; n++) { await store.append(newEvent(n)); clock.advance(1) }
    const claims: number[] = []
    const claimDue = store.claimDue.bind(store)
    store.claimDue = async (...args) => { const events = await claimDue(...args); claims.push(events.length); return events }
    worker.start()
    await app.arrived(2)
    // Two out, two left in the buffer: the next four are already claimed.
    while (claims.length < 2) await new Promise((resolve) => setImmediate(resolve))
    expect(claims).toEqual([4, 4])
    expect(app.held()).toBe(2)
    upstream.behave(ok)
    app.release()
    expect(await clock.nextSleep()).toBe(1000)
    expect((await store.stats()).counts).toMatchObject({ pending: 0, delivered: 8 })
    expect(upstream.received).toHaveLength(8)
  })

  it('a callback\'s attempt in flight does not hold the background loop: it still sleeps and claims on its interval', async () => {
    const app = holdingApp()
    const worker = await setup(app.behaviour)
    // As the gateway appends it: not due for the background until the callback is over.
    const { event } = await store.append(newEvent(1, { firstAttemptAt: clock.now() + 60_000 }))
    const inFlight = worker.attemptNow(event, { timeLeftMs: 3000 })
    await app.arrived(1)
    worker.start()
    expect(await clock.nextSleep()).toBe(1000)
    clock.advance(1000)
    expect(await clock.nextSleep()).toBe(1000)
    app.release()
    expect(await inFlight).toMatchObject({ outcome: 'delivered', state: 'delivered' })
  })

  it('runs at most `concurrency` attempts at once, oldest first', async () => {
    const app = holdingApp()
    const worker = await setup(app.behaviour, { concurrency: 3 })
    const ids = []
    for (let n = 0; n < 10; n++) { ids.push((await store.append(newEvent(n))).event.id); clock.advance(1) }
    worker.start()
    await app.arrived(3)
    // Give the loop a chance to overrun the bound, were it to.
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(app.held()).toBe(3)
    expect(worker.inFlight).toBe(3)
    expect(upstream.received.map((r) => r.headers['webhook-id'])).toEqual(ids.slice(0, 3))
    upstream.behave(ok)
    app.release()
    expect(await clock.nextSleep()).toBe(1000)
    expect((await store.stats()).counts).toMatchObject({ pending: 0, delivered: 10 })
  })

  it('global back-off: while the app keeps failing the worker sends one probe per doubling pause, and resumes in full when it answers', async () => {
    const worker = await setup(status(503), {
      concurrency: 4, backoffThreshold: 3, backoffInitialMs: 1000, backoffMaxMs: 4000, retryScheduleMs: [3_600_000]
    })
    for (let n = 0; n < 40; n++) await store.append(newEvent(n))
    worker.start()
    expect(await clock.nextSleep()).toBe(1000)
    const burst = upstream.received.length
    // Only the attempts in flight when the third failure came: not the 40 of the backlog.
    expect(burst).toBeGreaterThanOrEqual(3)
    expect(burst).toBeLessThanOrEqual(6)
    expect(worker.backoff.open).toBe(true)
    const pauses = []
    for (let i = 0; i < 4; i++) {
      clock.advance(pauses.at(-1) ?? 1000)
      pauses.push(await clock.nextSleep())
      expect(upstream.received.length).toBe(burst + i + 1)
    }
    expect(pauses).toEqual([2000, 4000, 4000, 4000])
    upstream.behave(ok)
    clock.advance(4000)
    expect(await clock.nextSleep()).toBe(1000)
    expect(worker.backoff.open).toBe(false)
    expect((await store.stats()).counts).toMatchObject({ delivered: 40 - burst - 4, pending: burst + 4 })
  })

  it('close() stops claiming and waits for the attempts in flight to be recorded', async () => {
    const app = holdingApp()
    const worker = await setup(app.behaviour, { concurrency: 2 })
    for (let n = 0; n < 5; n++) await store.append(newEvent(n))
    worker.start()
    await app.arrived(2)
    const closing = worker.close()
    app.release()
    await closing
    expect((await store.stats()).counts).toMatchObject({ delivered: 2, pending: 3 })
    expect(upstream.received.length).toBe(2)
  })
})
