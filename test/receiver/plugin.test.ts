import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ossCallback, type OssCallbackPluginOptions } from '../../src/receiver/plugin.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair, type SignedCallback } from '../helpers/keys.js'
import { rawRequest } from '../helpers/server.js'

const pair = testKeyPair(512)
let keyServer: KeyServer
let app: FastifyInstance | undefined
beforeAll(async () => {
  keyServer = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem }, '/hang.pem': { kind: 'hang' } })
})
afterAll(async () => { await keyServer.close() })
afterEach(async () => { await app?.close(); app = undefined })

async function build (options: Partial<OssCallbackPluginOptions> = {}): Promise<FastifyInstance> {
  app = Fastify()
  app.post('/host/json', async (request) => ({ got: request.body }))
  await app.register(ossCallback, { path: '/cb', keyOrigins: [keyServer.origin], ...options })
  await app.ready()
  return app
}

function callback (overrides: Partial<Parameters<typeof signedCallback>[0]> = {}): SignedCallback {
  return signedCallback({ url: '/cb', keyUrl: keyServer.url('/k.pem'), privateKey: pair.privateKey, body: 'bucket=b&object=o.txt&size=5', ...overrides })
}

function send (a: FastifyInstance, cb: SignedCallback): Promise<LightMyRequestResponse> {
  return a.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
}

function errorBody (statusCode: number, code: string, error: string, message: string): unknown {
  return { statusCode, code, error, message }
}

describe('ossCallback plugin', () => {
  it('answers 200 JSON with an exact Content-Length and passes the typed callback to the handler', async () => {
    let seen: unknown
    const a = await build({ handler: (cb, ctx) => { seen = ctx.request.ossCallback === cb; return { ok: true, object: cb.system.object, size: cb.system.size } } })
    const res = await send(a, callback())
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('application/json')
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(res.body)))
    expect(res.json()).toEqual({ ok: true, object: 'o.txt', size: 5 })
    expect(seen).toBe(true)
  })

  it('answers {"Status":"OK"} when the handler returns nothing', async () => {
    const a = await build({ handler: async () => undefined })
    expect((await send(a, callback())).body).toBe('{"Status":"OK"}')
  })

  it('keeps its raw-body parsers to itself: the host app still parses JSON', async () => {
    const a = await build()
    const res = await a.inject({ method: 'POST', url: '/host/json', payload: { a: 1 } })
    expect(res.json()).toEqual({ got: { a: 1 } })
  })

  it('refuses a reply over 1 MB with a coded 500', async () => {
    const a = await build({ handler: () => ({ big: 'x'.repeat(1_000_000) }) })
    const res = await send(a, callback())
    expect(res.statusCode).toBe(500)
    expect(res.json()).toEqual(errorBody(500, 'OSS_CB_ERR_REPLY_INVALID', 'Internal Server Error', 'The callback reply is not valid for OSS'))
  })

  it('refuses a reply that is not JSON-serialisable', async () => {
    const a = await build({ handler: () => ({ n: 1n }) })
    expect((await send(a, callback())).json()).toMatchObject({ code: 'OSS_CB_ERR_REPLY_INVALID' })
  })

  it('answers a coded 500 when the handler throws, without echoing its message', async () => {
    const a = await build({ handler: () => { throw new Error('db password is hunter2') } })
    const res = await send(a, callback())
    expect(res.json()).toEqual(errorBody(500, 'OSS_CB_ERR_HANDLER_FAILED', 'Internal Server Error', 'The callback handler failed'))
    expect(res.body).not.toContain('hunter2')
  })

  it('answers a coded 504 at the deadline when the handler hangs, and aborts its signal', async () => {
    let aborted = false
    const a = await build({ deadlineMs: 300, handler: (_cb, ctx) => new Promise(() => { ctx.signal.addEventListener('abort', () => { aborted = true }) }) })
    const started = Date.now()
    const res = await send(a, callback())
    expect(Date.now() - started).toBeLessThan(2000)
    expect(res.json()).toEqual(errorBody(504, 'OSS_CB_ERR_DEADLINE_EXCEEDED', 'Gateway Timeout', 'The callback deadline was exceeded'))
    expect(aborted).toBe(true)
  })

  it('gives the key fetch only the time left before the deadline', async () => {
    const a = await build({ deadlineMs: 300, keys: { fetchTimeoutMs: 2000 } })
    const started = Date.now()
    const res = await send(a, callback({ keyUrl: keyServer.url('/hang.pem') }))
    expect(Date.now() - started).toBeLessThan(2000)
    expect(res.json()).toEqual(errorBody(504, 'OSS_CB_ERR_KEY_FETCH_TIMEOUT', 'Gateway Timeout', 'The public key fetch timed out'))
  })

  it('refuses a body over the limit with 413', async () => {
    const a = await build({ bodyLimitBytes: 100 })
    const res = await send(a, callback({ body: 'a='.padEnd(101, 'x') }))
    expect(res.json()).toEqual(errorBody(413, 'OSS_CB_ERR_BODY_TOO_LARGE', 'Payload Too Large', 'The callback body is too large'))
  })

  it.each(['text/plain', 'multipart/form-data; boundary=x'])('refuses content type %s with 415', async (type) => {
    const a = await build()
    const res = await send(a, callback({ contentType: type }))
    expect(res.json()).toEqual(errorBody(415, 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type', 'The callback content type is not supported'))
  })

  it('refuses a signature that does not verify with 403', async () => {
    const a = await build()
    const cb = callback()
    const res = await a.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: Buffer.concat([cb.body, Buffer.from('0')]) })
    expect(res.json()).toEqual(errorBody(403, 'OSS_CB_ERR_SIGNATURE_MISMATCH', 'Forbidden', 'The callback signature does not verify'))
  })

  it.each(['GET', 'PUT', 'DELETE'] as const)('answers %s on the callback path with a coded 405', async (method) => {
    const a = await build()
    const res = await a.inject({ method, url: '/cb' })
    expect(res.json()).toEqual(errorBody(405, 'OSS_CB_ERR_METHOD_NOT_ALLOWED', 'Method Not Allowed', 'Method not allowed'))
    expect(res.headers.allow).toBe('POST')
  })

  it('refuses a callback whose header lines reach Node\'s maxHeadersCount (a duplicate past it would go unseen) with 431', async () => {
    const a = await build()
    await a.listen({ host: '127.0.0.1', port: 0 })
    const port = (a.server.address() as AddressInfo).port
    const cb = callback()
    const lines = [
      'POST /cb HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close', `Content-Length: ${cb.body.length}`,
      ...Object.entries(cb.headers).map(([n, v]) => `${n}: ${v}`),
      ...Array.from({ length: 2000 }, () => 'a: 1'),
      `authorization: ${cb.headers.authorization}`
    ]
    const res = await rawRequest(port, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), cb.body]))
    expect(res.status).toBe(431)
    expect(JSON.parse(res.body)).toEqual(errorBody(431, 'OSS_CB_ERR_HEADERS_TOO_LARGE', 'Request Header Fields Too Large', 'The request headers are too large'))
  })

  it('fetches a new key once for 50 concurrent first callbacks', async () => {
    const fresh = await startKeyServer({ '/new.pem': { kind: 'pem', pem: pair.publicPem, delayMs: 50 } })
    try {
      const a = await build({ keyOrigins: [fresh.origin] })
      const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => send(a, callback({ keyUrl: fresh.url('/new.pem'), body: `bucket=b&object=${i}` }))))
      expect(replies.map((r) => r.statusCode)).toEqual(Array(50).fill(200))
      expect(fresh.hits.get('/new.pem')).toBe(1)
    } finally {
      await fresh.close()
    }
  })

  it('calls onFailure with the coded error', async () => {
    const codes: string[] = []
    const a = await build({ onFailure: (err) => codes.push(err.code) })
    await a.inject({ method: 'POST', url: '/cb', headers: { 'content-type': 'application/json' }, payload: '{}' })
    expect(codes).toEqual(['OSS_CB_ERR_MISSING_HEADER'])
  })

  it.each([
    ['deadlineMs', { deadlineMs: 0 }],
    ['bodyLimitBytes', { bodyLimitBytes: 1.5 }],
    ['path', { path: 'cb' }],
    ['keyOrigins', { keyOrigins: ['https://x.example/path'] }]
  ])('refuses a bad %s at registration', async (_name, options) => {
    await expect(build(options as Partial<OssCallbackPluginOptions>)).rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION' })
  })
})
