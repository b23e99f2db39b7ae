import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve, type HttpBindings, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCallbackVerifier, type CallbackVerifier } from '../../src/index.js'
import { callbackResponse, errorResponse, verifyRequest, type VerifyRequestOptions } from '../../src/web.js'
import { docCallback } from '../helpers/fixtures.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair, type SignedCallback } from '../helpers/keys.js'

const pair = testKeyPair(512)
let keyServer: KeyServer
let verifier: CallbackVerifier
beforeAll(async () => {
  keyServer = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } })
  verifier = createCallbackVerifier({ keyOrigins: [keyServer.origin] })
})
afterAll(async () => { await keyServer.close() })

function local (overrides: Partial<Parameters<typeof signedCallback>[0]> = {}): SignedCallback {
  return signedCallback({ url: '/api/oss', keyUrl: keyServer.url('/k.pem'), privateKey: pair.privateKey, body: 'bucket=b&object=a%2Fb.jpg&size=42&x%3Auser=u1', ...overrides })
}
const genuine: SignedCallback = { url: docCallback.path + docCallback.query, headers: docCallback.headers, body: Buffer.from(docCallback.body) }
const tamper = (cb: SignedCallback): SignedCallback => ({ ...cb, body: Buffer.from(cb.body.toString().replace('b', 'c')) })

const requestOf = (cb: SignedCallback, origin = 'https://app.example.com'): Request =>
  new Request(origin + cb.url, { method: 'POST', headers: cb.headers, body: cb.body })

/** A Next.js App Router route handler (app/api/oss/route.ts), as its docs write one. */
function nextRoute (options?: VerifyRequestOptions): (request: Request) => Promise<Response> {
  return async function POST (request: Request): Promise<Response> {
    try {
      const cb = await verifyRequest(request, options)
      return callbackResponse({ ok: true, type: cb.type, bucket: cb.system.bucket, vars: cb.vars })
    } catch (err) {
      return errorResponse(err)
    }
  }
}

describe('oss-callback/web in a Next.js-style route handler (Request/Response on Node)', () => {
  it('verifies the genuine OSS callback from the docs with no options (pinned production key)', async () => {
    const res = await nextRoute()(requestOf(genuine, 'http://121.43.113.8'))
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ ok: true, type: 'form', bucket: 'yonghu-test' })
  })

  it('verifies a form and a JSON callback signed by a local key', async () => {
    const route = nextRoute({ verifier })
    const form = await route(requestOf(local()))
    expect(await form.json()).toEqual({ ok: true, type: 'form', bucket: 'b', vars: { 'x:user': 'u1' } })
    const json = await route(requestOf(local({ body: '{"bucket":"jb","x:user":"u2"}', contentType: 'application/json' })))
    expect(json.status).toBe(200)
    expect(await json.json()).toEqual({ ok: true, type: 'json', bucket: 'jb', vars: { 'x:user': 'u2' } })
  })

  it('answers a tampered callback with the coded 403', async () => {
    const res = await nextRoute({ verifier })(requestOf(tamper(local())))
    expect(res.status).toBe(403)
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(await res.json()).toEqual({ statusCode: 403, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', error: 'Forbidden', message: 'The callback signature does not verify' })
  })

  it('refuses a request whose body was already read, with the code naming the fix', async () => {
    const request = requestOf(local())
    await request.text()
    const err = await verifyRequest(request, { verifier }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_BODY_ALREADY_READ', statusCode: 500 })
  })

  it('refuses a body over the limit with the coded 413, before reading it all', async () => {
    const err = await verifyRequest(requestOf(local({ body: `bucket=${'b'.repeat(200)}` })), { verifier, bodyLimitBytes: 64 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_BODY_TOO_LARGE' })
  })

  it('verifies a target the URL parser rewrites only when given the raw request target', async () => {
    // OSS signs the path as it sent it; WHATWG URL parsing resolves the `./` segment away.
    const cb = local({ url: '/api/./oss?q=1' })
    const route = nextRoute({ verifier })
    expect((await route(requestOf(cb))).status).toBe(403)
    expect((await nextRoute({ verifier, requestTarget: '/api/./oss?q=1' })(requestOf(cb))).status).toBe(200)
  })

  it('keeps `+`, `%2B` and an empty `?` as OSS signs them', async () => {
    const route = nextRoute({ verifier })
    expect((await route(requestOf(local({ url: '/api/a+b%2Bc?x=1+2%2B3' })))).status).toBe(200)
    expect((await route(requestOf(local({ url: '/api/oss?' })))).status).toBe(200)
  })
})

describe('callbackResponse and errorResponse', () => {
  it('answers 200 JSON with the exact Content-Length; undefined is {"Status":"OK"}', async () => {
    const res = callbackResponse({ name: 'é' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength('{"name":"é"}')))
    expect(await callbackResponse().text()).toBe('{"Status":"OK"}')
  })

  it('turns a reply OSS would refuse (over 1 MB) into the coded 500, and an unknown error into OSS_CB_ERR_INTERNAL', async () => {
    const big = callbackResponse({ big: 'x'.repeat(1_000_001) })
    expect(big.status).toBe(500)
    expect(await big.json()).toMatchObject({ code: 'OSS_CB_ERR_REPLY_INVALID' })
    const internal = errorResponse(new Error('secret detail'))
    expect(await internal.json()).toEqual({ statusCode: 500, code: 'OSS_CB_ERR_INTERNAL', error: 'Internal Server Error', message: 'Internal error' })
  })
})

describe('oss-callback/web in Hono', () => {
  type Env = { Bindings: HttpBindings }
  function honoApp (options: (env: HttpBindings | undefined) => VerifyRequestOptions): Hono<Env> {
    const app = new Hono<Env>()
    // A JSON body parser on the app's other routes.
    app.use('/items/*', async (c, next) => { c.set('parsed' as never, await c.req.json() as never); await next() })
    app.post('/items/new', (c) => c.json({ got: c.get('parsed' as never) }))
    app.post('/api/oss', async (c) => {
      try {
        const cb = await verifyRequest(c.req.raw, options(c.env as HttpBindings | undefined))
        return callbackResponse({ bucket: cb.system.bucket, type: cb.type })
      } catch (err) {
        return errorResponse(err)
      }
    })
    app.post('/index.php', async (c) => {
      try {
        const cb = await verifyRequest(c.req.raw)
        return callbackResponse({ bucket: cb.system.bucket })
      } catch (err) {
        return errorResponse(err)
      }
    })
    return app
  }
  const send = (app: Hono<Env>, cb: SignedCallback): Promise<Response> =>
    Promise.resolve(app.request(cb.url, { method: 'POST', headers: cb.headers, body: cb.body }))

  it('verifies the genuine callback, a form and a JSON one, beside a JSON parser on other routes', async () => {
    const app = honoApp(() => ({ verifier }))
    expect(await (await send(app, genuine)).json()).toEqual({ bucket: 'yonghu-test' })
    expect(await (await send(app, local())).json()).toEqual({ bucket: 'b', type: 'form' })
    expect(await (await send(app, local({ body: '{"bucket":"jb"}', contentType: 'application/json' }))).json()).toEqual({ bucket: 'jb', type: 'json' })
    const items = await app.request('/items/new', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
    expect(await items.json()).toEqual({ got: { a: 1 } })
  })

  it('answers a tampered callback with the coded 403', async () => {
    const res = await send(honoApp(() => ({ verifier })), tamper(local()))
    expect(res.status).toBe(403)
    expect(await res.json()).toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
  })

  it('refuses with the coded error when a global middleware read the body first', async () => {
    const app = new Hono<Env>()
    app.use('*', async (c, next) => { await c.req.text(); await next() })
    app.post('/api/oss', async (c) => verifyRequest(c.req.raw, { verifier }).then(() => callbackResponse(), errorResponse))
    const res = await send(app, local())
    expect(res.status).toBe(500)
    expect(await res.json()).toMatchObject({ code: 'OSS_CB_ERR_BODY_ALREADY_READ' })
  })

  it('on @hono/node-server over real HTTP, verifies a target the URL parser rewrites when given c.env.incoming.url', async () => {
    const withRaw = honoApp((env) => ({ verifier, requestTarget: env?.incoming.url }))
    const withoutRaw = honoApp(() => ({ verifier }))
    // Sent raw: `./` and a bare `'` reach the server as OSS sent them; Request.url has `/api/oss?name=%27x%27`.
    const cb = local({ url: "/api/./oss?name='x'" })
    for (const [app, status] of [[withRaw, 200], [withoutRaw, 403]] as const) {
      const server: ServerType = await new Promise((resolve) => { const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => { resolve(s) }) })
      try {
        const port = (server.address() as AddressInfo).port
        const res = await new Promise<{ status: number, body: string }>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: cb.url, headers: cb.headers }, (r) => {
            let body = ''
            r.on('data', (c: Buffer) => { body += c.toString() }).on('end', () => { resolve({ status: r.statusCode ?? 0, body }) })
          })
          req.on('error', reject)
          req.end(cb.body)
        })
        expect(res.status).toBe(status)
        if (status === 200) expect(JSON.parse(res.body)).toEqual({ bucket: 'b', type: 'form' })
      } finally {
        await new Promise((resolve) => { server.close(resolve) })
      }
    }
  })
})
