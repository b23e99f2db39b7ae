import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { Webhook, WebhookVerificationError } from 'standardwebhooks'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, type AppDependencies } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { FORWARD_EVENT_TYPE, createForwarder, type ForwardEnvelope } from '../../src/server/forward.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { answerJson, startUpstream, type Upstream } from '../helpers/upstream.js'
import { captureLogger } from '../helpers/log-capture.js'

const SECRET = `whsec_${randomBytes(32).toString('base64')}`
const BODY = 'bucket=photos&object=users%2F7%2Fcat.jpg&etag=D41D8CD98F00B204E9800998ECF8427E&size=114020&mimeType=image%2Fjpeg' +
  '&imageInfo.height=&imageInfo.width=&imageInfo.format=&x:uid=7&x:note=hello%20world'

let keys: KeyServer
let upstream: Upstream
const apps: FastifyInstance[] = []

beforeAll(async () => {
  const pair = testKeyPair(512)
  keys = await startKeyServer({
    '/k.pem': { kind: 'pem', pem: pair.publicPem },
    '/slow.pem': { kind: 'pem', pem: pair.publicPem, delayMs: 600 }
  })
  upstream = await startUpstream()
})

afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
  upstream.received.length = 0
})

afterAll(async () => {
  await upstream.close()
  await keys.close()
})

async function startGateway (env: Record<string, string> = {}, deps: AppDependencies = {}): Promise<string> {
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    OSS_CALLBACK_KEY_ORIGINS: keys.origin,
    OSS_CALLBACK_FORWARD_URL: upstream.url('/hooks/oss?tenant=a'),
    OSS_CALLBACK_FORWARD_SECRET: SECRET,
    // Direct forwarding: the durable gateway has its own tests (gateway.test.ts).
    OSS_CALLBACK_DATABASE_URL: 'none',
    ...env
  })
  const app = await buildApp(config, deps)
  apps.push(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

interface Answer { status: number, text: string, headers: Headers, elapsedMs: number }

async function sendCallback (base: string, keyPath = '/k.pem'): Promise<Answer> {
  const cb = signedCallback({ url: '/oss/callback?ticket=t-1', body: BODY, keyUrl: keys.url(keyPath), privateKey: testKeyPair(512).privateKey })
  const started = performance.now()
  const res = await fetch(base + cb.url, {
    method: 'POST',
    headers: { ...cb.headers, 'x-oss-request-id': '5C3D9178CE3D3B3A3A3A3A3A' },
    body: cb.body
  })
  const text = await res.text()
  return { status: res.status, text, headers: res.headers, elapsedMs: performance.now() - started }
}

function errorBody (statusCode: number, code: string, error: string, message: string): unknown {
  return { statusCode, code, error, message }
}
const FAILED = errorBody(502, 'OSS_CB_ERR_FORWARD_FAILED', 'Bad Gateway', 'The upstream application did not accept the callback')
const TIMEOUT = errorBody(504, 'OSS_CB_ERR_FORWARD_TIMEOUT', 'Gateway Timeout', 'The upstream application did not answer in time')

describe('forward mode', () => {
  it('relays the upstream 200 JSON reply to OSS byte for byte', async () => {
    // Odd spacing, key order and non-ASCII: any re-serialisation would change these bytes.
    const reply = Buffer.from('{ "Status" :"OK","b":1 ,"a":"caf\u00e9 \u2713","n":1.50}')
    upstream.behave(answerJson(reply))
    const base = await startGateway()
    const res = await sendCallback(base)
    expect(res.status).toBe(200)
    expect(Buffer.from(res.text)).toEqual(reply)
    expect(res.headers.get('content-length')).toBe(String(reply.length))
    expect(res.headers.get('content-type')).toBe('application/json')
  })

  it('signs the envelope so that the Standard Webhooks library verifies it, and carries the whole callback', async () => {
    upstream.behave(answerJson('{"ok":true}'))
    const base = await startGateway()
    const before = Date.now()
    expect((await sendCallback(base)).status).toBe(200)
    expect(upstream.received).toHaveLength(1)
    const req = upstream.received[0]!
    expect(req.method).toBe('POST')
    expect(req.url).toBe('/hooks/oss?tenant=a')
    expect(req.headers['content-type']).toBe('application/json')
    expect(req.headers['webhook-id']).toMatch(/^msg_[0-9a-f-]{36}$/)
    expect(req.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/)

    // What an upstream does: verify over the raw body with its copy of the secret.
    const envelope = new Webhook(SECRET).verify(req.body, req.headers as Record<string, string>) as ForwardEnvelope
    expect(envelope.type).toBe(FORWARD_EVENT_TYPE)
    expect(Date.parse(envelope.timestamp)).toBeGreaterThanOrEqual(before - 1000)
    expect(Date.parse(envelope.timestamp)).toBeLessThanOrEqual(Date.now())
    expect(envelope.data).toEqual({
      ossRequestId: '5C3D9178CE3D3B3A3A3A3A3A',
      keyUrl: keys.url('/k.pem'),
      keySource: 'fetch',
      path: '/oss/callback',
      query: 'ticket=t-1',
      bodyType: 'form',
      system: {
        bucket: 'photos',
        object: 'users/7/cat.jpg',
        etag: 'D41D8CD98F00B204E9800998ECF8427E',
        size: 114020,
        mimeType: 'image/jpeg',
        imageInfo: {}
      },
      vars: { 'x:uid': '7', 'x:note': 'hello world' },
      fields: {
        bucket: 'photos',
        object: 'users/7/cat.jpg',
        etag: 'D41D8CD98F00B204E9800998ECF8427E',
        size: '114020',
        mimeType: 'image/jpeg',
        'imageInfo.height': '',
        'imageInfo.width': '',
        'imageInfo.format': '',
        'x:uid': '7',
        'x:note': 'hello world'
      },
      rawBodyBase64: Buffer.from(BODY).toString('base64')
    })

    // A changed byte, another secret or a stripped header is refused.
    const headers = req.headers as Record<string, string>
    const tampered = Buffer.from(req.body.toString().replace('photos', 'photoz'))
    expect(() => new Webhook(SECRET).verify(tampered, headers)).toThrow(WebhookVerificationError)
    expect(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(req.body, headers)).toThrow(WebhookVerificationError)
    expect(() => new Webhook(SECRET).verify(req.body, { ...headers, 'webhook-id': 'msg_other' })).toThrow(WebhookVerificationError)
  })

  it('carries a JSON callback with its JSON types, and its raw bytes', async () => {
    upstream.behave((_req, res) => { res.writeHead(204).end() })
    const base = await startGateway()
    const body = '{"bucket":"photos","object":"a b.png","size":7,"imageInfo.width":640,"x:tags":"p,q","nested":{"k":[1,2]}}'
    const cb = signedCallback({ body, contentType: 'application/json', keyUrl: keys.url('/k.pem'), privateKey: testKeyPair(512).privateKey })
    const res = await fetch(base + cb.url, { method: 'POST', headers: cb.headers, body: cb.body })
    expect(res.status).toBe(200)
    const envelope = new Webhook(SECRET).verify(upstream.received[0]!.body, upstream.received[0]!.headers as Record<string, string>) as ForwardEnvelope
    expect(envelope.data).toMatchObject({
      ossRequestId: null,
      bodyType: 'json',
      query: '',
      system: { bucket: 'photos', object: 'a b.png', size: 7, imageInfo: { width: 640 } },
      vars: { 'x:tags': 'p,q' },
      fields: { size: 7, nested: { k: [1, 2] } },
      rawBodyBase64: Buffer.from(body).toString('base64')
    })
  })

  it('stamps webhook-timestamp from its clock, so an upstream refuses a replayed old envelope', async () => {
    upstream.behave(answerJson('{}'))
    const tenMinutesAgo = Date.now() - 10 * 60_000
    const base = await startGateway({}, { forward: { now: () => tenMinutesAgo, messageId: () => 'msg_fixed' } })
    expect((await sendCallback(base)).status).toBe(200)
    const req = upstream.received[0]!
    expect(req.headers['webhook-id']).toBe('msg_fixed')
    expect(req.headers['webhook-timestamp']).toBe(String(Math.floor(tenMinutesAgo / 1000)))
    expect(() => new Webhook(SECRET).verify(req.body, req.headers as Record<string, string>)).toThrow('Message timestamp too old')
  })

  it('answers a 204 with the default {"Status":"OK", ...system fields} reply', async () => {
    upstream.behave((_req, res) => { res.writeHead(204).end() })
    const base = await startGateway()
    const res = await sendCallback(base)
    expect(res.status).toBe(200)
    expect(res.text).toBe('{"Status":"OK","bucket":"photos","object":"users/7/cat.jpg","etag":"D41D8CD98F00B204E9800998ECF8427E",' +
      '"size":114020,"mimeType":"image/jpeg","imageInfo":{}}')
  })

  it('reuses one keep-alive connection to the upstream for callbacks in a row', async () => {
    upstream.behave(answerJson('{"ok":1}'))
    const before = upstream.connections()
    const base = await startGateway()
    for (let i = 0; i < 5; i++) expect((await sendCallback(base)).status).toBe(200)
    expect(upstream.received).toHaveLength(5)
    expect(upstream.connections() - before).toBe(1)
  })

  it('retries once, with the same webhook-id, when a pooled connection was closed before the upstream answered', async () => {
    let n = 0
    upstream.behave((req, res) => {
      n++
      if (n === 2) { res.socket?.destroy(); return }
      answerJson(`{"n":${n}}`)(req, res)
    })
    const base = await startGateway()
    expect((await sendCallback(base)).text).toBe('{"n":1}')
    const second = await sendCallback(base)
    expect(second.status).toBe(200)
    expect(second.text).toBe('{"n":3}')
    expect(upstream.received).toHaveLength(3)
    expect(upstream.received[2]!.headers['webhook-id']).toBe(upstream.received[1]!.headers['webhook-id'])
  })

  it('lets a forward in flight finish when the server shuts down', async () => {
    upstream.behave((req, res) => { setTimeout(() => answerJson('{"finished":true}')(req, res), 500) })
    const base = await startGateway()
    const pending = sendCallback(base)
    while (upstream.received.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    const app = apps.pop() as FastifyInstance
    await app.close()
    const res = await pending
    expect(res.status).toBe(200)
    expect(res.text).toBe('{"finished":true}')
  })

  describe('an upstream that fails gets a coded error well inside OSS\'s 5 s', () => {
    it('down (connection refused): 502', async () => {
      const probe = createServer()
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
      const port = (probe.address() as AddressInfo).port
      await new Promise<void>((resolve) => probe.close(() => resolve()))
      const base = await startGateway({ OSS_CALLBACK_FORWARD_URL: `http://127.0.0.1:${port}/hook` })
      const res = await sendCallback(base)
      expect(res.status).toBe(502)
      expect(JSON.parse(res.text)).toEqual(FAILED)
      expect(res.elapsedMs).toBeLessThan(3000)
    })

    // The 3.5 s default is asserted on the configuration ('reads the forward settings, with a 3500 ms default timeout').
    it('never answers: 504 when the forward timeout passes', async () => {
      upstream.behave(() => {})
      const base = await startGateway({ OSS_CALLBACK_FORWARD_TIMEOUT_MS: '300' })
      const res = await sendCallback(base)
      expect(res.status).toBe(504)
      expect(JSON.parse(res.text)).toEqual(TIMEOUT)
      expect(res.elapsedMs).toBeGreaterThanOrEqual(290)
      expect(res.elapsedMs).toBeLessThan(3000)
    })

    it('slow past the time left: the forward is cut at the callback\'s deadline, not its own timeout', async () => {
      // The key takes 0.6 s, leaving about 0.9 s of the 1.5 s deadline: less than the 1.4 s forward timeout,
      // which alone would end at 2 s.
      upstream.behave((_req, res) => { setTimeout(() => answerJson('{"late":true}')(_req, res), 3000) })
      const base = await startGateway({ OSS_CALLBACK_DEADLINE_MS: '1500', OSS_CALLBACK_FORWARD_TIMEOUT_MS: '1400' })
      const res = await sendCallback(base, '/slow.pem')
      expect(res.status).toBe(504)
      expect(JSON.parse(res.text)).toEqual(TIMEOUT)
      expect(res.elapsedMs).toBeGreaterThanOrEqual(1300)
      expect(res.elapsedMs).toBeLessThan(1950)
    })

    it.each([
      ['500', answerJson('{"error":"boom"}', 500)],
      ['a redirect (never followed)', (_req: unknown, res: ServerResponse) => { res.writeHead(302, { location: '/elsewhere' }).end() }],
      ['201 (only 200 and 204 are accepted)', answerJson('{"created":true}', 201)],
      ['200 that is not JSON', answerJson('<html>OK</html>')],
      ['200 with an empty body', answerJson('')],
      ['200 JSON with a byte-order mark (OSS refuses one)', answerJson(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')]))],
      ['200 JSON over 1 MB', answerJson(JSON.stringify({ pad: 'x'.repeat(1_000_001) }))],
      ['200 JSON over 1 MB without Content-Length', (_req: unknown, res: ServerResponse) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{"pad":"')
        for (let i = 0; i < 17; i++) res.write('x'.repeat(64 * 1024))
        res.end('"}')
      }],
      ['a connection reset before any answer', (_req: unknown, res: ServerResponse) => { res.socket?.destroy() }]
    ])('%s: 502', async (_name, behaviour) => {
      upstream.behave(behaviour)
      const base = await startGateway()
      const res = await sendCallback(base)
      expect(res.status).toBe(502)
      expect(JSON.parse(res.text)).toEqual(FAILED)
      expect(res.elapsedMs).toBeLessThan(3000)
    })
  })

  it.each([
    // V8 quotes the text in some messages ("Unexpected token 'h', "hush-hush" is not valid JSON") and gives a position in others.
    ['an unexpected token', 'hush-hush', 'JsonParseFailure: SyntaxError\n'],
    ['an unexpected token inside', '{"hush": tru}', 'JsonParseFailure: SyntaxError\n'],
    ['text after the JSON', '{"ok":1} hush', 'JsonParseFailure: SyntaxError at position 9\n'],
    ['a control character in a string', '{"hush":"a\u0001"}', 'JsonParseFailure: SyntaxError at position 10\n']
  ])('regression: an upstream\'s non-JSON answer (%s) reached the log through the parser\'s message; the log has its kind and position only', async (_name, answer, logged) => {
    const log = captureLogger('trace')
    upstream.behave(answerJson(answer))
    const base = await startGateway({}, { logger: log.logger })
    const res = await sendCallback(base)
    expect(res.status).toBe(502)
    const failed = log.lines().find((l) => l.msg === 'callback failed')
    expect(failed).toMatchObject({ code: 'OSS_CB_ERR_FORWARD_FAILED', reason: 'upstream reply is not JSON' })
    expect(JSON.stringify(failed)).toContain(JSON.stringify(logged).slice(1, -1))
    expect(log.text()).not.toContain('hush')
  })

  it('records forward outcomes and durations in /metrics', async () => {
    const base = await startGateway()
    upstream.behave(answerJson('{}'))
    await sendCallback(base)
    upstream.behave((_req, res) => { res.writeHead(204).end() })
    await sendCallback(base)
    upstream.behave(answerJson('nope'))
    await sendCallback(base)
    const text = await (await fetch(`${base}/metrics`)).text()
    expect(text).toMatch(/^oss_callback_forwards_total\{outcome="ok"\} 1$/m)
    expect(text).toMatch(/^oss_callback_forwards_total\{outcome="no_content"\} 1$/m)
    expect(text).toMatch(/^oss_callback_forwards_total\{outcome="bad_reply"\} 1$/m)
    expect(text).toMatch(/^oss_callback_forwards_total\{outcome="timeout"\} 0$/m)
    expect(text).toMatch(/^oss_callback_forward_duration_seconds_count 3$/m)
    expect(text).toMatch(/^oss_callback_callbacks_total\{outcome="ok"\} 2$/m)
    expect(text).toMatch(/^oss_callback_callbacks_total\{outcome="OSS_CB_ERR_FORWARD_FAILED"\} 1$/m)
  })
})

describe('forward mode configuration', () => {
  const base = { OSS_CALLBACK_FORWARD_URL: 'http://app.internal:3000/oss', OSS_CALLBACK_FORWARD_SECRET: SECRET }

  it('reads the forward settings, with a 3500 ms default timeout', () => {
    const config = loadConfig(base)
    expect(config.forwardUrl).toBe('http://app.internal:3000/oss')
    expect(config.forwardSecret).toBe(SECRET)
    expect(config.forwardTimeoutMs).toBe(3500)
    expect(config.forwardMaxSockets).toBe(64)
    expect(loadConfig({}).forwardUrl).toBeUndefined()
  })

  it.each([
    [{ OSS_CALLBACK_FORWARD_URL: base.OSS_CALLBACK_FORWARD_URL }, 'OSS_CALLBACK_FORWARD_URL is set but OSS_CALLBACK_FORWARD_SECRET is not'],
    [{ OSS_CALLBACK_FORWARD_SECRET: SECRET }, 'OSS_CALLBACK_FORWARD_SECRET is set but OSS_CALLBACK_FORWARD_URL is not'],
    [{ ...base, OSS_CALLBACK_FORWARD_URL: 'ftp://app.internal/oss' }, 'OSS_CALLBACK_FORWARD_URL must be an http: or https: URL'],
    [{ ...base, OSS_CALLBACK_FORWARD_URL: 'app.internal/oss' }, 'OSS_CALLBACK_FORWARD_URL is not a valid URL'],
    [{ ...base, OSS_CALLBACK_FORWARD_URL: 'https://user:pw@app.internal/oss' }, 'OSS_CALLBACK_FORWARD_URL must not hold user info'],
    [{ ...base, OSS_CALLBACK_FORWARD_SECRET: SECRET.slice('whsec_'.length) }, 'OSS_CALLBACK_FORWARD_SECRET must start with whsec_'],
    [{ ...base, OSS_CALLBACK_FORWARD_SECRET: 'whsec_not base64!' }, 'OSS_CALLBACK_FORWARD_SECRET must be whsec_ followed by standard, padded base64'],
    [{ ...base, OSS_CALLBACK_FORWARD_SECRET: `whsec_${randomBytes(16).toString('base64')}` }, 'OSS_CALLBACK_FORWARD_SECRET must encode 24 to 64 random bytes, got 16'],
    [{ ...base, OSS_CALLBACK_FORWARD_TIMEOUT_MS: '4500' }, 'OSS_CALLBACK_FORWARD_TIMEOUT_MS (4500) must be less than OSS_CALLBACK_DEADLINE_MS (4500)'],
    [{ ...base, OSS_CALLBACK_FORWARD_TIMEOUT_MS: '2s' }, 'OSS_CALLBACK_FORWARD_TIMEOUT_MS'],
    [{ ...base, OSS_CALLBACK_FORWARD_MAX_SOCKETS: '0' }, 'OSS_CALLBACK_FORWARD_MAX_SOCKETS']
  ])('refuses %j', (env, message) => {
    let thrown: Error | undefined
    try { loadConfig(env) } catch (err) { thrown = err as Error }
    expect(thrown).toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION' })
    expect(thrown?.message).toContain(message)
    // The secret is never quoted back, even partly.
    expect(thrown?.message).not.toContain(SECRET.slice('whsec_'.length, 'whsec_'.length + 12))
  })

  it('createForwarder validates its options too', () => {
    expect(() => createForwarder({ url: 'http://127.0.0.1/', secret: SECRET, timeoutMs: 0 }))
      .toThrow('Invalid option: forwardTimeoutMs must be a whole number from 1 to 60000, got 0')
    expect(() => createForwarder({ url: 'http://127.0.0.1/', secret: 'whsec_' })).toThrow('forwardSecret must be whsec_ followed by standard, padded base64')
  })
})
