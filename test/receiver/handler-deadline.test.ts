import Fastify, { type FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { ossCallback, type CallbackContext, type CallbackHandler } from '../../src/receiver/plugin.js'
import { isOssCallbackError } from '../../src/errors.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

// The handler's signal is created lazily and its deadline armed only for async handlers:
// these tests pin down what a handler can observe, whichever way it is built.
const ORIGIN = 'http://127.0.0.1:9'
const KEY_URL = `${ORIGIN}/handler.pem`
let app: FastifyInstance | undefined

afterEach(async () => { await app?.close(); app = undefined })

async function start (handler: CallbackHandler, deadlineMs = 4500): Promise<FastifyInstance> {
  const pair = testKeyPair(512)
  app = Fastify()
  await app.register(ossCallback, { keyOrigins: [ORIGIN], keys: { pinned: new Map([[KEY_URL, pair.publicKey]]) }, handler, deadlineMs })
  return app
}

async function send (instance: FastifyInstance): Promise<{ status: number, body: unknown }> {
  const cb = signedCallback({ keyUrl: KEY_URL, privateKey: testKeyPair(512).privateKey })
  const res = await instance.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
  return { status: res.statusCode, body: res.json() }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('callback handler context and deadline', () => {
  it('gives a sync handler request, remainingMs and a live signal as own enumerable fields, and sends its reply', async () => {
    let seen: CallbackContext | undefined
    let keys: string[] = []
    let abortedDuring: boolean | undefined
    const instance = await start((cb, ctx) => {
      seen = ctx
      keys = Object.keys(ctx).sort()
      abortedDuring = ctx.signal.aborted
      return { ok: true, object: cb.system.object }
    })
    expect(await send(instance)).toEqual({ status: 200, body: { ok: true, object: 'a/b.jpg' } })
    expect(keys).toEqual(['deadlineAt', 'receivedAt', 'remainingMs', 'request', 'signal'])
    expect(abortedDuring).toBe(false)
    expect(seen?.remainingMs).toBeGreaterThan(0)
    expect(seen?.remainingMs).toBeLessThanOrEqual(4500)
    expect(seen?.request.url).toBe('/oss/callback')
    // A sync handler's callback is over once it returns: its signal never fires later.
    await sleep(50)
    expect(seen?.signal.aborted).toBe(false)
  })

  it('aborts the signal of an async handler at the deadline and answers 504', async () => {
    let reason: unknown
    const instance = await start(async (_cb, ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
      reason = ctx.signal.reason
      return { late: true }
    }, 200)
    const started = Date.now()
    const res = await send(instance)
    expect(res).toEqual({
      status: 504,
      body: { statusCode: 504, code: 'OSS_CB_ERR_DEADLINE_EXCEEDED', error: 'Gateway Timeout', message: 'The callback deadline was exceeded' }
    })
    expect(Date.now() - started).toBeLessThan(4000)
    await sleep(20)
    expect(isOssCallbackError(reason) && reason.code).toBe('OSS_CB_ERR_DEADLINE_EXCEEDED')
  })

  it('hands an already aborted signal to an async handler that first reads it after the deadline', async () => {
    let read: (value: AbortSignal) => void = () => {}
    const readLate = new Promise<AbortSignal>((resolve) => { read = resolve })
    const instance = await start(async (_cb, ctx) => {
      await sleep(300)
      read(ctx.signal)
      return {}
    }, 100)
    expect((await send(instance)).status).toBe(504)
    const signal = await readLate
    expect(signal.aborted).toBe(true)
    expect(isOssCallbackError(signal.reason) && signal.reason.code).toBe('OSS_CB_ERR_DEADLINE_EXCEEDED')
  })

  it('lets an async handler that finishes in time answer, and never aborts its signal afterwards', async () => {
    let signal: AbortSignal | undefined
    const instance = await start(async (_cb, ctx) => {
      signal = ctx.signal
      await sleep(10)
      return { done: 1 }
    }, 300)
    expect(await send(instance)).toEqual({ status: 200, body: { done: 1 } })
    await sleep(400)
    expect(signal?.aborted).toBe(false)
  })

  it.each([
    ['throws', (): unknown => { throw new Error('boom') }],
    ['rejects', async (): Promise<unknown> => { throw new Error('boom') }]
  ])('answers 500 HANDLER_FAILED when the handler %s', async (_name, handler) => {
    const instance = await start(handler)
    expect(await send(instance)).toEqual({
      status: 500,
      body: { statusCode: 500, code: 'OSS_CB_ERR_HANDLER_FAILED', error: 'Internal Server Error', message: 'The callback handler failed' }
    })
  })
})
