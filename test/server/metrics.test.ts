import { connect, type AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, type AppDependencies } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { METRIC_NAMES } from '../../src/server/metrics.js'
import { docCallback } from '../helpers/fixtures.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

let keys: KeyServer
const apps: FastifyInstance[] = []

beforeAll(async () => {
  keys = await startKeyServer({
    '/k.pem': { kind: 'pem', pem: testKeyPair(512).publicPem },
    '/gone.pem': { kind: 'status', status: 404 }
  })
})
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())) })
afterAll(async () => { await keys.close() })

async function makeApp (env: Record<string, string> = {}, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent', OSS_CALLBACK_KEY_ORIGINS: `${keys.origin},http://gosspublic.alicdn.com`, ...env }), deps)
  apps.push(app)
  return app
}

/** The value of one sample in Prometheus text, or undefined when absent. */
function sample (text: string, name: string, labels = ''): number | undefined {
  const prefix = labels === '' ? `${name} ` : `${name}{${labels}} `
  const line = text.split('\n').find((l) => l.startsWith(prefix))
  return line === undefined ? undefined : Number(line.slice(prefix.length))
}

async function scrape (app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  expect(res.statusCode).toBe(200)
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8')
  return res.body
}

function send (app: FastifyInstance, keyPath = '/k.pem', bits: 512 | 1024 = 512): Promise<LightMyRequestResponse> {
  const cb = signedCallback({ keyUrl: keys.url(keyPath), privateKey: testKeyPair(bits).privateKey })
  return app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
}

describe('GET /metrics', () => {
  it('counts callbacks by outcome, verification time, key fetches and cache hits as callbacks arrive', async () => {
    const app = await makeApp()
    const before = await scrape(app)
    expect(sample(before, METRIC_NAMES.callbacks, 'outcome="ok"')).toBe(0)
    expect(sample(before, `${METRIC_NAMES.verificationDuration}_count`)).toBe(0)
    expect(sample(before, METRIC_NAMES.keyFetches, 'result="ok"')).toBe(0)
    expect(sample(before, METRIC_NAMES.keyLookups, 'result="cache_miss"')).toBe(0)

    expect((await send(app)).statusCode).toBe(200)
    expect((await send(app)).statusCode).toBe(200)
    expect((await send(app, '/k.pem', 1024)).statusCode).toBe(403)
    expect((await send(app, '/gone.pem')).statusCode).toBe(502)
    const doc = await app.inject({ method: 'POST', url: '/oss/callback', headers: docCallback.headers, payload: docCallback.body })
    expect(doc.statusCode).toBe(403)

    const after = await scrape(app)
    expect(sample(after, METRIC_NAMES.callbacks, 'outcome="ok"')).toBe(2)
    expect(sample(after, METRIC_NAMES.callbacks, 'outcome="OSS_CB_ERR_SIGNATURE_MISMATCH"')).toBe(2)
    expect(sample(after, METRIC_NAMES.callbacks, 'outcome="OSS_CB_ERR_KEY_FETCH_FAILED"')).toBe(1)
    expect(sample(after, `${METRIC_NAMES.verificationDuration}_count`)).toBe(5)
    expect(sample(after, `${METRIC_NAMES.verificationDuration}_bucket`, 'le="+Inf"')).toBe(5)
    expect(sample(after, `${METRIC_NAMES.verificationDuration}_sum`)).toBeGreaterThan(0)
    expect(sample(after, METRIC_NAMES.keyFetches, 'result="ok"')).toBe(1)
    expect(sample(after, METRIC_NAMES.keyFetches, 'result="failed"')).toBe(1)
    expect(sample(after, METRIC_NAMES.keyLookups, 'result="cache_miss"')).toBe(2)
    expect(sample(after, METRIC_NAMES.keyLookups, 'result="cache_hit"')).toBe(2)
    // The doc callback was posted to the wrong path, but its key is the pinned one.
    expect(sample(after, METRIC_NAMES.keyLookups, 'result="pinned"')).toBe(1)

    // A fetch failure is followed by a back-off, not a second fetch.
    expect((await send(app, '/gone.pem')).statusCode).toBe(503)
    const again = await scrape(app)
    expect(sample(again, METRIC_NAMES.keyFetches, 'result="backoff"')).toBe(1)
    expect(sample(again, METRIC_NAMES.keyFetches, 'result="failed"')).toBe(1)
    expect(sample(again, METRIC_NAMES.callbacks, 'outcome="OSS_CB_ERR_KEY_FETCH_BACKOFF"')).toBe(1)
    expect(keys.hits.get('/gone.pem')).toBe(1)
  })

  it('counts callbacks whose handler passed the deadline', async () => {
    const app = await makeApp({ OSS_CALLBACK_DEADLINE_MS: '200' }, { handler: () => new Promise(() => {}) })
    const res = await send(app)
    expect(res.json()).toEqual({ statusCode: 504, code: 'OSS_CB_ERR_DEADLINE_EXCEEDED', error: 'Gateway Timeout', message: 'The callback deadline was exceeded' })
    const text = await scrape(app)
    expect(sample(text, METRIC_NAMES.deadlineExceeded)).toBe(1)
    expect(sample(text, METRIC_NAMES.callbacks, 'outcome="OSS_CB_ERR_DEADLINE_EXCEEDED"')).toBe(1)
  })

  it('exports process metrics, the verifier in use, and only forward metrics in forward mode', async () => {
    const text = await scrape(await makeApp())
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter')
    expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge')
    expect(text).toContain('# TYPE process_resident_memory_bytes gauge')
    expect(sample(text, METRIC_NAMES.verifierInfo, 'verifier="node:crypto"')).toBe(1)
    expect(text).not.toContain(METRIC_NAMES.forwards)
    for (const name of Object.values(METRIC_NAMES)) {
      expect(name).toMatch(/^oss_callback_[a-z_]+$/)
    }
  })

  it('keeps two apps in one process apart', async () => {
    const a = await makeApp()
    const b = await makeApp()
    expect((await send(a)).statusCode).toBe(200)
    expect(sample(await scrape(a), METRIC_NAMES.callbacks, 'outcome="ok"')).toBe(1)
    expect(sample(await scrape(b), METRIC_NAMES.callbacks, 'outcome="ok"')).toBe(0)
  })
})

describe('GET /readyz', () => {
  it('is ready once started, and answers 503 NOT_READY while the server is closing', async () => {
    let release: () => void = () => {}
    let entered: () => void = () => {}
    const inHandler = new Promise<void>((resolve) => { entered = resolve })
    const app = await makeApp({}, {
      handler: async () => {
        entered()
        await new Promise<void>((resolve) => { release = resolve })
        return { done: true }
      }
    })
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'ready', verifier: 'node:crypto' })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = (app.server.address() as AddressInfo).port

    // One connection: a callback still in flight, then a readiness probe once closing began.
    const cb = signedCallback({ keyUrl: keys.url('/k.pem'), privateKey: testKeyPair(512).privateKey })
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (d: Buffer) => { received += d.toString() })
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()))
    socket.write(`POST ${cb.url} HTTP/1.1\r\nHost: x\r\n` +
      Object.entries(cb.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
      `content-length: ${cb.body.length}\r\n\r\n`)
    socket.write(cb.body)
    await inHandler

    const closed = app.close()
    await new Promise((resolve) => setTimeout(resolve, 100))
    // The listener is closed by now; this connection stays up for its request in flight.
    socket.write('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((resolve) => setTimeout(resolve, 100))
    release()
    await ended
    await closed

    const responses = received.split(/(?=HTTP\/1\.1 )/)
    expect(responses).toHaveLength(2)
    expect(responses[0]).toMatch(/^HTTP\/1\.1 200 /)
    expect(responses[0]).toMatch(/\r\n\r\n\{"done":true\}$/)
    expect(responses[1]).toMatch(/^HTTP\/1\.1 503 /)
    expect(JSON.parse(responses[1]!.split('\r\n\r\n')[1]!)).toEqual({
      statusCode: 503, code: 'OSS_CB_ERR_NOT_READY', error: 'Service Unavailable', message: 'The receiver is not ready'
    })
  })
})
