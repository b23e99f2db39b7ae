import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import type { SignatureVerifier } from '../../src/receiver/signature-verifier.js'
import { docCallback } from '../helpers/fixtures.js'
import { captureLogger } from '../helpers/log-capture.js'

let app: FastifyInstance | undefined
afterEach(async () => { await app?.close(); app = undefined })

function sendDoc (a: FastifyInstance, headers: Record<string, string> = docCallback.headers): Promise<LightMyRequestResponse> {
  return a.inject({ method: 'POST', url: docCallback.path + docCallback.query, headers, payload: docCallback.body })
}

describe('standalone server', () => {
  it('verifies the real OSS callback offline on /index.php and answers the default reply', async () => {
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php', LOG_LEVEL: 'silent' }))
    const res = await sendDoc(app)
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('application/json')
    expect(res.json()).toEqual({ Status: 'OK', bucket: 'yonghu-test', imageInfo: {} })
  })

  it('refuses the real callback on a different path (the path is signed)', async () => {
    app = await buildApp(loadConfig({ LOG_LEVEL: 'silent' }))
    const res = await app.inject({ method: 'POST', url: '/oss/callback?id=1&index=2', headers: docCallback.headers, payload: docCallback.body })
    expect(res.statusCode).toBe(403)
  })

  it('verifies behind a proxy that strips a prefix, with OSS_CALLBACK_PUBLIC_PATH', async () => {
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/cb', OSS_CALLBACK_PUBLIC_PATH: '/index.php', LOG_LEVEL: 'silent' }))
    const res = await app.inject({ method: 'POST', url: '/cb?id=1&index=2', headers: docCallback.headers, payload: docCallback.body })
    expect(res.statusCode).toBe(200)
  })

  it('with OSS_CALLBACK_BUCKETS, a genuine OSS callback for another bucket is refused 403 and never reaches the handler', async () => {
    let handled = 0
    const handler = (): unknown => { handled++; return { ok: true } }
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php', OSS_CALLBACK_BUCKETS: 'my-bucket,my-other-bucket', LOG_LEVEL: 'silent' }), { handler })
    const res = await sendDoc(app)
    expect([res.statusCode, res.json()]).toEqual([403, { statusCode: 403, code: 'OSS_CB_ERR_BUCKET_NOT_ALLOWED', error: 'Forbidden', message: 'The callback is for a bucket that is not allowed' }])
    expect(handled).toBe(0)
    await app.close()
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php', OSS_CALLBACK_BUCKETS: 'my-bucket,yonghu-test', LOG_LEVEL: 'silent' }), { handler })
    expect((await sendDoc(app)).statusCode).toBe(200)
    expect(handled).toBe(1)
  })

  it('answers /healthz and /readyz', async () => {
    app = await buildApp(loadConfig({ LOG_LEVEL: 'silent' }))
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' })
    expect((await app.inject('/readyz')).json()).toEqual({ status: 'ready', verifier: 'node:crypto' })
  })

  it('answers unknown paths with a coded 404', async () => {
    app = await buildApp(loadConfig({ LOG_LEVEL: 'silent' }))
    const res = await app.inject('/nope')
    expect(res.statusCode).toBe(404)
    expect(res.json()).toEqual({ statusCode: 404, code: 'OSS_CB_ERR_NOT_FOUND', error: 'Not Found', message: 'Not found' })
  })

  it('falls back to node-forge when OpenSSL refuses RSA-MD5, logs it once, and still verifies', async () => {
    const refusing: SignatureVerifier = () => { throw new Error('unsupported') }
    const log = captureLogger('info')
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php' }), { logger: log.logger, nativeSignatureVerifier: refusing })
    expect((await sendDoc(app)).statusCode).toBe(200)
    expect((await sendDoc(app)).statusCode).toBe(200)
    expect((await app.inject('/readyz')).json()).toEqual({ status: 'ready', verifier: 'node-forge' })
    expect(log.lines().filter((l) => String(l.msg).includes('node-forge'))).toHaveLength(1)
  })

  it('logs why a callback was refused with the OSS request id, and never the signature or key URL header', async () => {
    const log = captureLogger('debug')
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php' }), { logger: log.logger })
    const headers = { ...docCallback.headers, 'x-oss-request-id': 'REQ-123' }
    await app.inject({ method: 'POST', url: '/index.php?id=1&index=9', headers, payload: docCallback.body })
    const refused = log.lines().find((l) => l.msg === 'callback refused')
    expect(refused).toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', reason: 'signature does not verify', ossRequestId: 'REQ-123' })
    expect(log.text()).not.toContain(String(docCallback.headers.authorization).slice(0, 20))
    expect(log.text()).not.toContain(String(docCallback.headers['x-oss-pub-key-url']).slice(0, 20))
  })

  it('regression: a forged 12 KB x-oss-request-id made a 12 KB log line; every logged header value is cut to 128 characters, marked', async () => {
    const log = captureLogger('debug')
    let fail = false
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php' }), {
      logger: log.logger,
      handler: () => { if (fail) throw new Error('down'); return { ok: true } }
    })
    const id = 'R'.repeat(12 * 1024)
    const headers = { ...docCallback.headers, 'x-oss-request-id': id }
    const send = (url: string): Promise<LightMyRequestResponse> => app!.inject({ method: 'POST', url, headers, payload: docCallback.body })
    expect((await send('/index.php?id=1&index=9')).statusCode).toBe(403)
    expect((await send('/index.php?id=1&index=2')).statusCode).toBe(200)
    fail = true
    expect((await send('/index.php?id=1&index=2')).statusCode).toBe(500)
    const logged = log.lines().filter((l) => l.ossRequestId !== undefined)
    expect(logged.map((l) => l.msg)).toEqual(['callback refused', 'callback verified', 'callback failed'])
    for (const line of logged) expect(line.ossRequestId).toBe(`${'R'.repeat(128)}…[cut]`)
    expect(log.text()).not.toContain('R'.repeat(129))
    const longest = Math.max(...log.text().split('\n').filter((l) => l.includes('ossRequestId')).map((l) => l.length))
    expect(longest).toBeLessThan(4096)
  })

  it('logs nothing at info for a verified callback', async () => {
    const log = captureLogger('info')
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php' }), { logger: log.logger })
    await app.ready()
    const before = log.lines().length
    expect((await sendDoc(app)).statusCode).toBe(200)
    expect(log.lines().length).toBe(before)
  })
})
