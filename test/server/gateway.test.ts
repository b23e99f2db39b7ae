import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Webhook } from 'standardwebhooks'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { loadDriver } from '../../src/events/driver.js'
import { openEventStore } from '../../src/events/open.js'
import type { SqliteEventStore } from '../../src/events/sqlite.js'
import type { EventStore, StoredEvent } from '../../src/events/store.js'
import { buildApp, type AppDependencies } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { fakeClock, type FakeClock } from '../helpers/clock.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { answerJson, startUpstream, type Upstream } from '../helpers/upstream.js'
import { callbackForTicket, TICKET_SERVER_ENV, TICKET_TOKEN } from '../helpers/tickets.js'
import type { IssuedTicket } from '../../src/tickets/issuer.js'

const SECRET = `whsec_${randomBytes(32).toString('base64')}`
const BODY = 'bucket=photos&object=users%2F7%2Fcat.jpg&etag=D41D8CD98F00B204E9800998ECF8427E&size=114020&mimeType=image%2Fjpeg'

let keys: KeyServer
let upstream: Upstream
let dir: string
let clock: FakeClock
const apps: FastifyInstance[] = []
const stores: EventStore[] = []

beforeAll(async () => {
  keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: testKeyPair(512).publicPem } })
  upstream = await startUpstream()
})
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oss-cb-gateway-'))
  clock = fakeClock(Date.now())
})
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
  await Promise.all(stores.splice(0).map((s) => s.close()))
  upstream.received.length = 0
  upstream.behave((_r, res) => { res.writeHead(204).end() })
  rmSync(dir, { recursive: true, force: true })
})
afterAll(async () => {
  await upstream.close()
  await keys.close()
})

interface Gateway { base: string, url: string, store: () => SqliteEventStore }

async function startGateway (env: Record<string, string> = {}, deps: AppDependencies = {}): Promise<Gateway> {
  const url = `sqlite:${join(dir, 'events.sqlite')}`
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    OSS_CALLBACK_KEY_ORIGINS: keys.origin,
    OSS_CALLBACK_FORWARD_URL: upstream.url('/hooks/oss'),
    OSS_CALLBACK_FORWARD_SECRET: SECRET,
    OSS_CALLBACK_FORWARD_TIMEOUT_MS: '500',
    OSS_CALLBACK_DEADLINE_MS: '1500',
    OSS_CALLBACK_DATABASE_URL: url,
    OSS_CALLBACK_RETRY_SCHEDULE: '5s',
    OSS_CALLBACK_RETRY_FOR: '1m',
    ...env
  })
  let opened: SqliteEventStore | undefined
  const app = await buildApp(config, {
    storeNow: clock.now,
    delivery: { clock, pollIntervalMs: 1000, jitter: 0, timeoutMs: 500, leaseMs: 5000 },
    openEventStore: async (u, o) => { opened = await openEventStore(u, o) as SqliteEventStore; return opened },
    ...deps
  })
  apps.push(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, url, store: () => opened as SqliteEventStore }
}

/** A second connection to the server's store, as the events CLI opens it. */
async function inspect (url: string): Promise<EventStore> {
  const store = await openEventStore(url, { create: false })
  stores.push(store)
  return store
}

/**
 * The one event in the log, once its callback's outcome is recorded: OSS gets its answer as soon as the app
 * answers, and the outcome follows in a later transaction.
 */
async function onlyEvent (url: string): Promise<StoredEvent> {
  const store = await inspect(url)
  for (let i = 0; ; i++) {
    const page = await store.list()
    expect(page.events).toHaveLength(1)
    const event = await store.get(page.events[0]?.id as string) as StoredEvent
    if (event.attempts > 0 || event.state !== 'pending' || i === 200) return event
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

interface Answer { status: number, text: string, json: () => Record<string, unknown> }

async function sendCallback (base: string, requestId = '5C3D9178CE3D3B3A3A3A3A3A', body = BODY): Promise<Answer> {
  const cb = signedCallback({ url: '/oss/callback', body, keyUrl: keys.url('/k.pem'), privateKey: testKeyPair(512).privateKey })
  const res = await fetch(base + cb.url, { method: 'POST', headers: { ...cb.headers, 'x-oss-request-id': requestId }, body: cb.body })
  const text = await res.text()
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> }
}

/** Advances the fake clock in steps until `check` holds (the worker sleeps on the fake clock). */
async function eventually (check: () => Promise<boolean> | boolean, stepMs = 1000, rounds = 200): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (await check()) return
    clock.advance(stepMs)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('condition not reached')
}

describe('durable gateway (SQLite)', () => {
  it('records the event, delivers it at once with webhook-id = event id, relays the app\'s bytes, and marks it delivered', async () => {
    const reply = Buffer.from('{ "Status":"OK", "id" : 7 }')
    upstream.behave(answerJson(reply))
    const gw = await startGateway()
    const res = await sendCallback(gw.base)
    expect(res.status).toBe(200)
    expect(res.text).toBe(reply.toString())
    const event = await onlyEvent(gw.url)
    expect(event).toMatchObject({ state: 'delivered', attempts: 1, bucket: 'photos', objectKey: 'users/7/cat.jpg' })
    expect(upstream.received).toHaveLength(1)
    const sent = upstream.received[0]
    expect(sent?.headers['webhook-id']).toBe(event.id)
    expect(() => new Webhook(SECRET).verify(sent?.body.toString() ?? '', sent?.headers as Record<string, string>)).not.toThrow()
  })

  it('OSS gets the app\'s answer without waiting for the outcome to be recorded; the record follows', async () => {
    upstream.behave(answerJson('{"Status":"OK"}'))
    let release = (): void => {}
    const held = new Promise<void>((resolve) => { release = resolve })
    const gw = await startGateway({}, {
      openEventStore: async (u, o) => {
        const store = await openEventStore(u, o)
        const finish = store.finish.bind(store)
        store.finish = async (...args) => { await held; return await finish(...args) }
        return store
      }
    })
    const res = await sendCallback(gw.base)
    expect([res.status, res.text]).toEqual([200, '{"Status":"OK"}'])
    const store = await inspect(gw.url)
    const [listed] = (await store.list()).events
    expect(listed).toMatchObject({ state: 'pending', attempts: 0 })
    release()
    expect(await onlyEvent(gw.url)).toMatchObject({ state: 'delivered', attempts: 1 })
  })

  it('refuse (default): the app fails, OSS gets the coded 502, the event is retried in the background with the same webhook-id once the app is back', async () => {
    upstream.behave((_r, res) => { res.writeHead(503).end() })
    const gw = await startGateway()
    const res = await sendCallback(gw.base)
    expect(res.status).toBe(502)
    expect(res.json().code).toBe('OSS_CB_ERR_FORWARD_FAILED')
    const pending = await onlyEvent(gw.url)
    expect(pending).toMatchObject({ state: 'pending', attempts: 1, lastError: 'app answered 503' })
    upstream.behave(answerJson('{"ok":true}'))
    await eventually(async () => (await (await inspect(gw.url)).get(pending.id))?.state === 'delivered')
    expect(upstream.received.map((r) => r.headers['webhook-id'])).toEqual([pending.id, pending.id])
  })

  it('refuse: an app that does not answer in time gives OSS the coded 504', async () => {
    upstream.behave(() => { /* never answers */ })
    const gw = await startGateway()
    const res = await sendCallback(gw.base)
    expect(res.status).toBe(504)
    expect(res.json().code).toBe('OSS_CB_ERR_FORWARD_TIMEOUT')
    expect((await onlyEvent(gw.url)).state).toBe('pending')
  })

  it('accept: the app fails, OSS gets 200 with delivery queued and the event id; delivered later', async () => {
    upstream.behave((_r, res) => { res.writeHead(500).end() })
    const gw = await startGateway({ OSS_CALLBACK_ON_UPSTREAM_FAILURE: 'accept' })
    const res = await sendCallback(gw.base)
    expect(res.status).toBe(200)
    const event = await onlyEvent(gw.url)
    expect(res.json()).toEqual({ Status: 'OK', delivery: 'queued', eventId: event.id })
    upstream.behave((_r, r) => { r.writeHead(204).end() })
    await eventually(async () => (await (await inspect(gw.url)).get(event.id))?.state === 'delivered')
  })

  it('an app 4xx (not 408/409/425/429) is a final refusal: coded 502, event rejected, never retried', async () => {
    upstream.behave((_r, res) => { res.writeHead(422).end() })
    const gw = await startGateway({ OSS_CALLBACK_ON_UPSTREAM_FAILURE: 'accept' })
    const res = await sendCallback(gw.base)
    expect(res.status).toBe(502)
    expect(res.json().code).toBe('OSS_CB_ERR_FORWARD_FAILED')
    expect(await onlyEvent(gw.url)).toMatchObject({ state: 'rejected', attempts: 1 })
    clock.advance(120_000)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(upstream.received).toHaveLength(1)
  })

  it('a 409 from the app is retried, not rejected', async () => {
    upstream.behave((_r, res) => { res.writeHead(409).end() })
    const gw = await startGateway()
    expect((await sendCallback(gw.base)).status).toBe(502)
    expect((await onlyEvent(gw.url)).state).toBe('pending')
  })

  it('the retry window spent: the event is dead', async () => {
    upstream.behave((_r, res) => { res.writeHead(500).end() })
    const gw = await startGateway({ OSS_CALLBACK_RETRY_FOR: '20s' })
    await sendCallback(gw.base)
    const { id } = await onlyEvent(gw.url)
    await eventually(async () => (await (await inspect(gw.url)).get(id))?.state === 'dead')
  })

  it('a resent callback (same bytes, same request id) gets the recorded answer and is not delivered again; another request id is a new event', async () => {
    upstream.behave(answerJson('{"n":1}'))
    const gw = await startGateway()
    const first = await sendCallback(gw.base)
    upstream.behave(answerJson('{"n":2}'))
    const again = await sendCallback(gw.base)
    expect([first.status, first.text]).toEqual([200, '{"n":1}'])
    expect([again.status, again.text]).toEqual([200, '{"n":1}'])
    expect(upstream.received).toHaveLength(1)
    const other = await sendCallback(gw.base, 'ANOTHER-REQUEST-ID')
    expect(other.text).toBe('{"n":2}')
    expect(upstream.received).toHaveLength(2)
  })

  it('a resent callback after a refusal gets the same coded answer, with no second attempt at once', async () => {
    upstream.behave((_r, res) => { res.writeHead(500).end() })
    const gw = await startGateway()
    const first = await sendCallback(gw.base)
    const again = await sendCallback(gw.base)
    expect(first.status).toBe(502)
    expect(again.status).toBe(502)
    expect(again.json().code).toBe('OSS_CB_ERR_FORWARD_FAILED')
    expect(upstream.received).toHaveLength(1)
  })

  it('a full store: the callback gets 503 OSS_CB_ERR_STORE_FAILED (nothing delivered, no 200) and /readyz 503; it recovers when space returns', async () => {
    upstream.behave(answerJson('{"ok":1}'))
    const gw = await startGateway()
    const store = gw.store()
    const pages = await store.pragma('page_count', { simple: true }) as number
    await store.pragma(`max_page_count = ${pages}`)
    // Events that cannot fit in the store's pages: every commit fails.
    const big = `${BODY}&x:pad=${'p'.repeat(40_000)}`
    const res = await sendCallback(gw.base, 'FULL', big)
    expect(res.status).toBe(503)
    expect(res.json().code).toBe('OSS_CB_ERR_STORE_FAILED')
    expect((await fetch(`${gw.base}/readyz`)).status).toBe(503)
    const deliveredBefore = upstream.received.length
    expect(upstream.received.some((r) => r.body.toString().includes('FULL'))).toBe(false)
    await store.pragma('max_page_count = 1073741823')
    expect((await fetch(`${gw.base}/readyz`)).status).toBe(200)
    const after = await sendCallback(gw.base, 'FULL', big)
    expect(after.status).toBe(200)
    expect(upstream.received.length).toBe(deliveredBefore + 1)
  })

  it('exports the event metrics: pending, oldest pending age, dead, attempts by outcome, store write latency', async () => {
    upstream.behave((_r, res) => { res.writeHead(500).end() })
    const gw = await startGateway()
    await sendCallback(gw.base)
    await onlyEvent(gw.url)
    const text = await (await fetch(`${gw.base}/metrics`)).text()
    expect(text).toMatch(/^oss_callback_events_pending 1$/m)
    expect(text).toMatch(/^oss_callback_events_dead 0$/m)
    expect(text).toMatch(/^oss_callback_events_oldest_pending_age_seconds \d/m)
    expect(text).toMatch(/^oss_callback_delivery_attempts_total\{outcome="retry",reason="bad_status",background="false"\} 1$/m)
    expect(text).toMatch(/^oss_callback_store_write_duration_seconds_count [1-9]/m)
  })

  it('retention deletes delivered events past OSS_CALLBACK_RETENTION, in the background', async () => {
    upstream.behave(answerJson('{"ok":1}'))
    const gw = await startGateway({ OSS_CALLBACK_RETENTION: '1h' }, { retentionIntervalMs: 50 })
    await sendCallback(gw.base)
    expect((await onlyEvent(gw.url)).state).toBe('delivered')
    clock.advance(2 * 3_600_000)
    const store = await inspect(gw.url)
    await eventually(async () => (await store.list()).events.length === 0, 0, 100)
  })

  it('refuses to start on a foreign or corrupted SQLite file, in one line naming the file', async () => {
    const path = join(dir, 'events.sqlite')
    writeFileSync(path, 'this is not a database, just some text that happens to be here\n'.repeat(100))
    const err = await startGateway().catch((e: unknown) => e as Error)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toContain(path)
    expect((err as Error).message).not.toContain('\n')
    expect((err as { code?: string }).code).toBe('OSS_CB_ERR_STORE_UNUSABLE')
  })

  it('a missing database driver: refuses to start with one line naming the package to install', async () => {
    const err = await startGateway({}, {
      openEventStore: async () => await loadDriver('better-sqlite3-not-installed-here', 'sqlite:')
    }).catch((e: unknown) => e as Error)
    expect((err as Error).message).toMatch(/sqlite: stores need the better-sqlite3-not-installed-here package, which is not installed/)
    expect((err as Error).message).not.toContain('\n')
  })

  it('OSS_CALLBACK_DATABASE_URL=none forwards directly, recording nothing', async () => {
    upstream.behave(answerJson('{"ok":1}'))
    const gw = await startGateway({ OSS_CALLBACK_DATABASE_URL: 'none' })
    expect((await sendCallback(gw.base)).status).toBe(200)
    expect(gw.store()).toBeUndefined()
    expect(upstream.received[0]?.headers['webhook-id']).toMatch(/^msg_/)
  })

  describe('with upload tickets', () => {
    const ticketEnv = (): Record<string, string> => ({ ...TICKET_SERVER_ENV })
    async function issue (base: string): Promise<IssuedTicket> {
      const res = await fetch(`${base}/oss/upload-tickets`, { method: 'POST', headers: { authorization: `Bearer ${TICKET_TOKEN}`, 'content-type': 'application/json' }, body: '{}' })
      expect(res.status).toBe(200)
      return await res.json() as IssuedTicket
    }
    async function sendTicketed (base: string, issued: IssuedTicket, requestId: string): Promise<Answer> {
      const cb = callbackForTicket(issued, keys.url('/k.pem'))
      const res = await fetch(base + cb.url, { method: 'POST', headers: { ...cb.headers, 'x-oss-request-id': requestId }, body: cb.body })
      const text = await res.text()
      return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> }
    }

    it('a failed commit never spends the ticket: after the store recovers, the same upload\'s callback is accepted', async () => {
      upstream.behave(answerJson('{"ok":1}'))
      const gw = await startGateway(ticketEnv())
      const issued = await issue(gw.base)
      const store = gw.store()
      await store.pragma(`max_page_count = ${await store.pragma('page_count', { simple: true }) as number}`)
      // Fill the store's last pages with events of its own, until not even a small one fits.
      for (let i = 0; i < 1000; i++) {
        const ok = await gw.store().append({ id: `evt_fill${i}`, type: 'oss.callback.verified', bucket: null, objectKey: null, etag: null, envelope: 'f'.repeat(1000), firstAttemptAt: clock.now() + 3_600_000 }).then(() => true, () => false)
        if (!ok) break
      }
      const full = await sendTicketed(gw.base, issued, 'R1')
      expect(full.status, full.text).toBe(503)
      expect(full.json().code).toBe('OSS_CB_ERR_STORE_FAILED')
      await store.pragma('max_page_count = 1073741823')
      const res = await sendTicketed(gw.base, issued, 'R2')
      expect(res.status, res.text).toBe(200)
      expect(upstream.received).toHaveLength(1)
    })

    it('a ticket refusal (a replay under another request id) marks its event rejected and answers 409 as without the log; nothing is delivered', async () => {
      upstream.behave(answerJson('{"ok":1}'))
      const gw = await startGateway(ticketEnv())
      const issued = await issue(gw.base)
      expect((await sendTicketed(gw.base, issued, 'FIRST')).status).toBe(200)
      const replay = await sendTicketed(gw.base, issued, 'REPLAY')
      expect(replay.status).toBe(409)
      expect(replay.json().code).toBe('OSS_CB_ERR_TICKET_USED')
      const listed = (await (await inspect(gw.url)).list()).events.map((e) => e.state)
      expect(listed.sort()).toEqual(['delivered', 'rejected'])
      clock.advance(120_000)
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(upstream.received).toHaveLength(1)
    })
  })
})
