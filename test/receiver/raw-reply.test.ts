import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { errors } from '../../src/errors.js'
import { MAX_REPLY_BYTES, ossCallback, RawJsonReply, type CallbackHandler, type OssCallbackPluginOptions } from '../../src/receiver/plugin.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

let keys: KeyServer

beforeAll(async () => {
  keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: testKeyPair(512).publicPem } })
})
afterAll(async () => { await keys.close() })

async function appWith (handler: CallbackHandler, extra: Partial<OssCallbackPluginOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(ossCallback, { keyOrigins: [keys.origin], handler, ...extra })
  return app
}

function send (app: FastifyInstance): Promise<LightMyRequestResponse> {
  const cb = signedCallback({ keyUrl: keys.url('/k.pem'), privateKey: testKeyPair(512).privateKey })
  return app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
}

describe('RawJsonReply', () => {
  it('is sent byte for byte, with an exact Content-Length', async () => {
    const bytes = Buffer.from('{"z" : 1,   "a":"\u00e9"}')
    const app = await appWith(() => RawJsonReply.from(bytes))
    const res = await send(app)
    expect(res.statusCode).toBe(200)
    expect(res.rawPayload).toEqual(bytes)
    expect(res.headers['content-length']).toBe(String(bytes.length))
    expect(res.headers['content-type']).toBe('application/json')
    await app.close()
  })

  it.each([
    ['not JSON', Buffer.from('OK')],
    ['empty', Buffer.alloc(0)],
    ['JSON after a UTF-8 byte-order mark', Buffer.from('\ufeff{}')],
    ['not UTF-8', Buffer.from([0x22, 0xff, 0x22])],
    ['over 1 MB', Buffer.from(JSON.stringify('x'.repeat(MAX_REPLY_BYTES)))]
  ])('refuses bytes that are %s', (_name, bytes) => {
    expect(() => RawJsonReply.from(bytes)).toThrow(errors.REPLY_INVALID)
  })

  it('accepts JSON of exactly 1 MB', () => {
    const bytes = Buffer.from(JSON.stringify('x'.repeat(MAX_REPLY_BYTES - 2)))
    expect(bytes.length).toBe(MAX_REPLY_BYTES)
    expect(RawJsonReply.from(bytes).bytes).toBe(bytes)
  })
})

describe('plugin hooks for forward mode and metrics', () => {
  it('answers a registry error thrown by the handler with its own code', async () => {
    const app = await appWith(() => { throw new errors.FORWARD_TIMEOUT() })
    const res = await send(app)
    expect(res.statusCode).toBe(504)
    expect(res.json()).toEqual({ statusCode: 504, code: 'OSS_CB_ERR_FORWARD_TIMEOUT', error: 'Gateway Timeout', message: 'The upstream application did not answer in time' })
    await app.close()
  })

  it('still answers any other thrown error as OSS_CB_ERR_HANDLER_FAILED', async () => {
    const app = await appWith(() => { throw new Error('db down: password=hunter2') })
    const res = await send(app)
    expect(res.json()).toEqual({ statusCode: 500, code: 'OSS_CB_ERR_HANDLER_FAILED', error: 'Internal Server Error', message: 'The callback handler failed' })
    await app.close()
  })

  it('gives the handler the arrival time, calls onSuccess once per 200, onFailure per refusal, onVerification per verification', async () => {
    const seen: number[] = []
    const outcomes: string[] = []
    const durations: number[] = []
    const app = await appWith((_cb, ctx) => { seen.push(ctx.receivedAt); return { ok: true } }, {
      onSuccess: (cb) => outcomes.push(`ok:${cb.system.bucket ?? ''}`),
      onFailure: (err) => outcomes.push(err.code),
      onVerification: (seconds) => durations.push(seconds)
    })
    const before = Date.now()
    expect((await send(app)).statusCode).toBe(200)
    const forged = signedCallback({ keyUrl: keys.url('/k.pem'), privateKey: testKeyPair(1024).privateKey })
    expect((await app.inject({ method: 'POST', url: forged.url, headers: forged.headers, payload: forged.body })).statusCode).toBe(403)
    expect(outcomes).toEqual(['ok:b', 'OSS_CB_ERR_SIGNATURE_MISMATCH'])
    // Both verifications were timed, the first including the key fetch; a missing header is one too.
    const bare = await app.inject({ method: 'POST', url: '/oss/callback', headers: { 'content-type': 'application/json' }, payload: '{}' })
    expect(bare.statusCode).toBe(400)
    expect(durations).toHaveLength(3)
    for (const d of durations) { expect(d).toBeGreaterThan(0); expect(d).toBeLessThan(5) }
    expect(seen).toHaveLength(1)
    expect(seen[0]).toBeGreaterThanOrEqual(before - 5)
    expect(seen[0]).toBeLessThanOrEqual(Date.now())
    await app.close()
  })
})
