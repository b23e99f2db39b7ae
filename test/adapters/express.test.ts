import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express5 from 'express'
import express4 from 'express4'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ossCallback, sendCallbackReply, type ExpressCallbackOptions } from '../../src/express.js'
import { docCallback } from '../helpers/fixtures.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair, type SignedCallback } from '../helpers/keys.js'

const pair = testKeyPair(512)
let keyServer: KeyServer
beforeAll(async () => { keyServer = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } }) })
afterAll(async () => { await keyServer.close() })

type ExpressFactory = typeof express5
const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => { s.closeAllConnections(); s.close(resolve) })))
})

async function listen (app: ReturnType<ExpressFactory>): Promise<string> {
  const server = await new Promise<Server>((resolve) => { const s = app.listen(0, '127.0.0.1', () => { resolve(s) }) })
  servers.push(server)
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function local (overrides: Partial<Parameters<typeof signedCallback>[0]> = {}): SignedCallback {
  return signedCallback({ url: '/oss/callback', keyUrl: keyServer.url('/k.pem'), privateKey: pair.privateKey, body: 'bucket=b&object=a%2Fb.jpg&size=42&x%3Auser=u1', ...overrides })
}

async function post (base: string, cb: SignedCallback): Promise<{ status: number, headers: Headers, text: string, json: () => Record<string, unknown> }> {
  const res = await fetch(base + cb.url, { method: 'POST', headers: cb.headers, body: cb.body })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> }
}

describe.each([['Express 4', express4 as unknown as ExpressFactory], ['Express 5', express5]])('oss-callback/express on %s', (_name, express) => {
  function app (options: ExpressCallbackOptions = { keyOrigins: [keyServer.origin] }, path = '/oss/callback'): ReturnType<ExpressFactory> {
    const a = express()
    a.post(path, ossCallback(options), (req, res) => {
      const cb = req.ossCallback
      sendCallbackReply(res, { ok: true, type: cb?.type, bucket: cb?.system.bucket, object: cb?.system.object, vars: cb?.vars })
    })
    return a
  }

  it('verifies the genuine OSS callback from the docs with no options (pinned production key)', async () => {
    const base = await listen(app({}, '/index.php'))
    const r = await post(base, { url: docCallback.path + docCallback.query, headers: docCallback.headers, body: Buffer.from(docCallback.body) })
    expect(r.status).toBe(200)
    expect(r.json()).toMatchObject({ ok: true, type: 'form', bucket: 'yonghu-test' })
  })

  it('verifies a form and a JSON callback signed by a local key, and replies under OSS rules', async () => {
    const base = await listen(app())
    const form = await post(base, local())
    expect(form.status).toBe(200)
    expect(form.json()).toEqual({ ok: true, type: 'form', bucket: 'b', object: 'a/b.jpg', vars: { 'x:user': 'u1' } })
    expect(form.headers.get('content-type')).toBe('application/json')
    expect(Number(form.headers.get('content-length'))).toBe(Buffer.byteLength(form.text))
    const json = await post(base, local({ body: '{"bucket":"b","object":"k.txt","size":3,"x:user":"u2"}', contentType: 'application/json' }))
    expect(json.status).toBe(200)
    expect(json.json()).toEqual({ ok: true, type: 'json', bucket: 'b', object: 'k.txt', vars: { 'x:user': 'u2' } })
  })

  it('refuses a tampered callback with the coded 403 and does not call the handler', async () => {
    const base = await listen(app())
    const cb = local()
    const r = await post(base, { ...cb, body: Buffer.from(cb.body.toString().replace('size=42', 'size=43')) })
    expect(r.status).toBe(403)
    expect(r.json()).toEqual({ statusCode: 403, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', error: 'Forbidden', message: 'The callback signature does not verify' })
  })

  it('refuses with the coded error naming the fix when a global express.json() read the body first', async () => {
    const a = express()
    a.use(express.json())
    a.post('/oss/callback', ossCallback({ keyOrigins: [keyServer.origin] }), (_req, res) => { sendCallbackReply(res) })
    const base = await listen(a)
    const r = await post(base, local({ body: '{"bucket":"b"}', contentType: 'application/json' }))
    expect(r.status).toBe(500)
    expect(r.json()).toMatchObject({ statusCode: 500, code: 'OSS_CB_ERR_BODY_ALREADY_READ' })
    expect(r.json().message).toContain('express.json()')
  })

  it('refuses the same way when a global express.urlencoded() read a form callback', async () => {
    const a = express()
    a.use(express.urlencoded({ extended: false }))
    a.post('/oss/callback', ossCallback({ keyOrigins: [keyServer.origin] }), (_req, res) => { sendCallbackReply(res) })
    const r = await post(await listen(a), local())
    expect(r.status).toBe(500)
    expect(r.json()).toMatchObject({ code: 'OSS_CB_ERR_BODY_ALREADY_READ' })
  })

  it('works beside express.json() on another route, which still parses its own bodies', async () => {
    const a = express()
    a.post('/api/items', express.json(), (req, res) => { res.json({ got: req.body as unknown }) })
    a.post('/oss/callback', ossCallback({ keyOrigins: [keyServer.origin] }), (req, res) => { sendCallbackReply(res, { bucket: req.ossCallback?.system.bucket }) })
    const base = await listen(a)
    const r = await post(base, local({ body: '{"bucket":"jb"}', contentType: 'application/json' }))
    expect(r.status).toBe(200)
    expect(r.json()).toEqual({ bucket: 'jb' })
    const api = await fetch(`${base}/api/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
    expect(await api.json()).toEqual({ got: { a: 1 } })
  })

  it('verifies the path OSS called when the route sits under a mounted router', async () => {
    const a = express()
    const router = express.Router()
    router.post('/oss', ossCallback({ keyOrigins: [keyServer.origin] }), (req, res) => { sendCallbackReply(res, { key: req.ossCallback?.system.object }) })
    a.use('/hooks', router)
    const r = await post(await listen(a), local({ url: '/hooks/oss?x=1' }))
    expect(r.status).toBe(200)
  })

  it('enforces the body limit with the coded 413', async () => {
    const base = await listen(app({ keyOrigins: [keyServer.origin], bodyLimitBytes: 64 }))
    const r = await post(base, local({ body: `bucket=b&object=${'o'.repeat(100)}` }))
    expect(r.status).toBe(413)
    expect(r.json()).toMatchObject({ code: 'OSS_CB_ERR_BODY_TOO_LARGE' })
  })

  it('sendCallbackReply answers a reply OSS would refuse (over 1 MB) with the coded 500', async () => {
    const a = express()
    a.post('/oss/callback', ossCallback({ keyOrigins: [keyServer.origin] }), (_req, res) => { sendCallbackReply(res, { big: 'x'.repeat(1_000_001) }) })
    const r = await post(await listen(a), local())
    expect(r.status).toBe(500)
    expect(r.json()).toMatchObject({ code: 'OSS_CB_ERR_REPLY_INVALID' })
  })
})

describe('ossCallback options', () => {
  it('refuses a bad bodyLimitBytes at start-up with a one-line error', () => {
    expect(() => ossCallback({ bodyLimitBytes: 0 })).toThrow(/bodyLimitBytes must be a whole number/)
  })
})
