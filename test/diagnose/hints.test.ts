import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { createDiagnostics } from '../../src/diagnose/explain.js'
import { AUTHORIZATION_DROPPED_HINT, CONTENT_TYPE_HINT, GET_ON_CALLBACK_PATH_HINT } from '../../src/diagnose/hints.js'
import type { OssCallbackError } from '../../src/errors.js'
import { KeyProvider } from '../../src/keys/provider.js'
import { ossCallback } from '../../src/receiver/plugin.js'
import { createCallbackVerifier } from '../../src/receiver/verify.js'
import { refusedRequestOf } from '../helpers/diagnose.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { captureLogger } from '../helpers/log-capture.js'

const pair = testKeyPair(512)
const KEY_ORIGIN = 'http://127.0.0.1:9'
const KEY_URL = `${KEY_ORIGIN}/k.pem`

let app: FastifyInstance | undefined
afterEach(async () => { await app?.close(); app = undefined })

/** A receiver whose refusals go through the diagnostics via the plugin's onFailure hook. */
async function receiver (keyOrigins: string[] = [KEY_ORIGIN]): Promise<{ app: FastifyInstance, refusals: Array<{ code: string, hint: string | undefined }> }> {
  const keys = new KeyProvider({ pinned: new Map([[KEY_URL, pair.publicKey]]), fetch: async () => { throw new Error('no fetch here') } })
  const verifier = createCallbackVerifier({ keyOrigins, keys })
  const diagnostics = createDiagnostics({ keys, policy: verifier.policy, bodyLimitBytes: 100 })
  const refusals: Array<{ code: string, hint: string | undefined }> = []
  app = Fastify()
  await app.register(ossCallback, {
    path: '/cb',
    verifier,
    bodyLimitBytes: 100,
    onFailure: (err: OssCallbackError, request) => { refusals.push({ code: err.code, hint: diagnostics.onRefusal(err, refusedRequestOf(request)) }) }
  })
  await app.ready()
  return { app, refusals }
}

function callback (keyUrl = KEY_URL, body = 'bucket=b&object=o&size=1'): ReturnType<typeof signedCallback> {
  return signedCallback({ url: '/cb', body, keyUrl, privateKey: pair.privateKey })
}

describe('hints without a verify', () => {
  it('Authorization missing while x-oss-pub-key-url is present: something in front dropped it; the answer carries no hint', async () => {
    const { app, refusals } = await receiver()
    const cb = callback()
    const headers: Record<string, string> = { ...cb.headers }
    delete headers.authorization
    const res = await app.inject({ method: 'POST', url: cb.url, headers, payload: cb.body })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toEqual({ statusCode: 400, code: 'OSS_CB_ERR_MISSING_HEADER', error: 'Bad Request', message: 'A required OSS callback header is missing' })
    expect(refusals).toEqual([{ code: 'OSS_CB_ERR_MISSING_HEADER', hint: AUTHORIZATION_DROPPED_HINT }])
  })

  it('both headers missing: not a dropped header, no hint', async () => {
    const { app, refusals } = await receiver()
    await app.inject({ method: 'POST', url: '/cb', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=1' })
    expect(refusals).toEqual([{ code: 'OSS_CB_ERR_MISSING_HEADER', hint: undefined }])
  })

  it('a key URL on OSS\'s own host left out of the key origins: names the setting and the origin to add', async () => {
    const { app, refusals } = await receiver()
    const cb = callback('https://gosspublic.alicdn.com/callback_pub_key_v1.pem')
    await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect(refusals).toEqual([{
      code: 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED',
      hint: 'The key URL is on OSS\'s own key host (https://gosspublic.alicdn.com), which OSS_CALLBACK_KEY_ORIGINS (keyOrigins) leaves out: add https://gosspublic.alicdn.com to OSS_CALLBACK_KEY_ORIGINS (keyOrigins)'
    }])
  })

  it('a simulator\'s key URL: suggests its origin, for tests only', async () => {
    const { app, refusals } = await receiver()
    const cb = callback('http://127.0.0.1:8090/callback_pub_key_sim_0123456789abcdef.pem')
    await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect(refusals[0]?.hint).toBe('The key URL is an oss-callback simulator\'s (http://127.0.0.1:8090): to accept this simulator\'s callbacks in a test setup, add http://127.0.0.1:8090 to OSS_CALLBACK_KEY_ORIGINS (keyOrigins). Never in production')
  })

  it('any other key URL: likely forged, and no origin is suggested', async () => {
    const { app, refusals } = await receiver()
    for (const url of ['https://gosspublic.alicdn.com.evil.example/callback_pub_key_v1.pem', 'https://evil.example/k.pem']) {
      const cb = callback(url)
      await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    }
    expect(refusals).toHaveLength(2)
    for (const r of refusals) {
      expect(r.code).toBe('OSS_CB_ERR_KEY_URL_NOT_ALLOWED')
      expect(r.hint).toMatch(/which is neither OSS's key host nor a simulator's: the callback is likely forged\. Do not add it to OSS_CALLBACK_KEY_ORIGINS/)
    }
  })

  it('OSS\'s key host with an allowed origin but a path OSS never uses: likely forged', async () => {
    const { app, refusals } = await receiver(['https://gosspublic.alicdn.com'])
    const cb = callback('https://gosspublic.alicdn.com/a/b.pem')
    await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect(refusals[0]?.hint).toMatch(/^The key URL names OSS's key host but breaks the key URL rule \(key URL path is not \/<name>\.pem\).*likely forged/)
  })

  it('a GET on the callback path: the route is wrong, OSS posts', async () => {
    const { app, refusals } = await receiver()
    const res = await app.inject({ method: 'GET', url: '/cb' })
    expect(res.statusCode).toBe(405)
    expect(res.body).not.toContain('POST')
    expect(refusals).toEqual([{ code: 'OSS_CB_ERR_METHOD_NOT_ALLOWED', hint: GET_ON_CALLBACK_PATH_HINT }])
  })

  it('an unsupported content type: the callbackBodyType', async () => {
    const { app, refusals } = await receiver()
    const cb = callback()
    await app.inject({ method: 'POST', url: cb.url, headers: { ...cb.headers, 'content-type': 'text/plain' }, payload: cb.body })
    expect(refusals).toEqual([{ code: 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE', hint: CONTENT_TYPE_HINT }])
    expect(CONTENT_TYPE_HINT).toContain('callbackBodyType')
  })

  it('a body over the limit: names the limit and the setting', async () => {
    const { app, refusals } = await receiver()
    const cb = callback(KEY_URL, `bucket=b&object=${'o'.repeat(200)}`)
    const res = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect(res.statusCode).toBe(413)
    expect(refusals[0]?.code).toBe('OSS_CB_ERR_BODY_TOO_LARGE')
    expect(refusals[0]?.hint).toMatch(/^The body is over the body limit of 100 bytes.*OSS_CALLBACK_BODY_LIMIT_BYTES \(bodyLimitBytes\)/)
  })

  it('a signature mismatch through the plugin: the hint is for the log, the answer is the plain coded 403', async () => {
    const { app, refusals } = await receiver()
    const cb = signedCallback({ url: '/cb', signedUrl: '/api/cb', keyUrl: KEY_URL, privateKey: pair.privateKey })
    const res = await app.inject({ method: 'POST', url: cb.url, headers: { ...cb.headers, 'x-original-uri': '/api/cb' }, payload: cb.body })
    expect(res.statusCode).toBe(403)
    expect(res.json()).toEqual({ statusCode: 403, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', error: 'Forbidden', message: 'The callback signature does not verify' })
    expect(refusals[0]?.hint).toMatch(/Set OSS_CALLBACK_PUBLIC_PATH=\/api\/cb/)
  })
})

describe('the plugin wires the diagnostics into its refusal path', () => {
  async function plugin (diagnostics?: false | { captureDir: string }): Promise<{ app: FastifyInstance, log: ReturnType<typeof captureLogger>, failures: OssCallbackError[] }> {
    const log = captureLogger('info')
    const failures: OssCallbackError[] = []
    const keys = new KeyProvider({ pinned: new Map([[KEY_URL, pair.publicKey]]) })
    app = Fastify({ loggerInstance: log.logger })
    await app.register(ossCallback, { path: '/cb', keyOrigins: [KEY_ORIGIN], keys, diagnostics, onFailure: (err) => { failures.push(err) } })
    await app.ready()
    return { app, log, failures }
  }
  const proxied = (): { url: string, headers: Record<string, string>, payload: Buffer } => {
    const cb = signedCallback({ url: '/cb', signedUrl: '/api/cb', keyUrl: KEY_URL, privateKey: pair.privateKey })
    return { url: cb.url, headers: { ...cb.headers, 'x-forwarded-prefix': '/api' }, payload: cb.body }
  }

  it('by default: the hint in the warn line and on error.hint, never in the answer', async () => {
    const { app, log, failures } = await plugin()
    const res = await app.inject({ method: 'POST', ...proxied() })
    expect(res.json()).toEqual({ statusCode: 403, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', error: 'Forbidden', message: 'The callback signature does not verify' })
    const hint = 'OSS signed /api/cb; the request arrived as /cb: a proxy strips /api (X-Forwarded-Prefix says so). Set OSS_CALLBACK_PUBLIC_PATH=/api/cb (publicPath)'
    expect(log.lines().find((l) => l.msg === 'callback refused')).toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', hint })
    expect(failures[0]?.hint).toBe(hint)
    expect(failures[0]?.message).toBe('The callback signature does not verify')
  })

  it('with a shared verifier, the diagnosis uses its public path', async () => {
    const keys = new KeyProvider({ pinned: new Map([[KEY_URL, pair.publicKey]]) })
    const failures: OssCallbackError[] = []
    app = Fastify()
    await app.register(ossCallback, {
      path: '/cb',
      verifier: createCallbackVerifier({ keyOrigins: [KEY_ORIGIN], keys, publicPath: '/api/cb' }),
      onFailure: (err) => { failures.push(err) }
    })
    const cb = signedCallback({ url: '/cb', keyUrl: KEY_URL, privateKey: pair.privateKey })
    expect((await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })).statusCode).toBe(403)
    expect(failures[0]?.hint).toMatch(/^OSS signed the path as it arrived, \/cb, not OSS_CALLBACK_PUBLIC_PATH=\/api\/cb/)
  })

  it('diagnostics: false logs no hint', async () => {
    const { app, log } = await plugin(false)
    await app.inject({ method: 'POST', ...proxied() })
    const refused = log.lines().find((l) => l.msg === 'callback refused')
    expect(refused?.code).toBe('OSS_CB_ERR_SIGNATURE_MISMATCH')
    expect(refused).not.toHaveProperty('hint')
  })

  it('captureDir keeps the refused callback, written by the time the app has closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oss-cb-plugin-capture-'))
    try {
      const { app } = await plugin({ captureDir: join(dir, 'c') })
      const sent = proxied()
      await app.inject({ method: 'POST', ...sent })
      await app.close()
      const files = readdirSync(join(dir, 'c'))
      expect(files).toHaveLength(1)
      const captured = readFileSync(join(dir, 'c', files[0] as string))
      expect(captured.subarray(0, 17).toString()).toBe('POST /cb HTTP/1.1')
      expect(captured.subarray(captured.length - sent.payload.length)).toEqual(sent.payload)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
