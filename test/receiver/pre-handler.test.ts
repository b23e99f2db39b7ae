import Fastify, { type FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { ossError } from '../../src/errors.js'
import { ossCallback, type CallbackContext, type CallbackHandler, type PreHandlerContext, type PreHandlerHook } from '../../src/receiver/plugin.js'
import type { VerifiedCallback } from '../../src/receiver/verify.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

// The preHandler hook: an app's own check between verification and the handler, within the deadline.
const ORIGIN = 'http://127.0.0.1:9'
const KEY_URL = `${ORIGIN}/pre-handler.pem`
let app: FastifyInstance | undefined

afterEach(async () => { await app?.close(); app = undefined })

interface Options { preHandler: PreHandlerHook, handler?: CallbackHandler<{ intent?: string }>, deadlineMs?: number, buckets?: string[] }

async function start (options: Options): Promise<FastifyInstance> {
  app = Fastify()
  await app.register(ossCallback, {
    keyOrigins: [ORIGIN],
    keys: { pinned: new Map([[KEY_URL, testKeyPair(512).publicKey]]) },
    ...options
  })
  return app
}

async function send (instance: FastifyInstance, body = 'bucket=demo-bucket&object=a%2Fb.jpg&size=42', tamper = false): Promise<{ status: number, body: Record<string, unknown> }> {
  const cb = signedCallback({ keyUrl: KEY_URL, privateKey: testKeyPair(512).privateKey, body })
  const payload = tamper ? Buffer.from(cb.body.toString().replace('size=42', 'size=43')) : cb.body
  const res = await instance.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload })
  return { status: res.statusCode, body: res.json() }
}

describe('preHandler hook', () => {
  it('runs after verification with the verified callback and the deadline, and what it returns reaches the handler\'s context', async () => {
    const order: string[] = []
    let hookContext: PreHandlerContext | undefined
    let handlerContext: CallbackContext<{ intent?: string }> | undefined
    const before = Date.now()
    const instance = await start({
      deadlineMs: 3000,
      preHandler: (cb: VerifiedCallback, ctx) => {
        order.push(`hook ${cb.system.object ?? ''} ${String(cb.system.size)}`)
        hookContext = ctx
        return { intent: `intent for ${cb.system.object ?? ''}` }
      },
      handler: (cb, ctx) => {
        order.push('handler')
        handlerContext = ctx
        return { ok: true, intent: ctx.intent }
      }
    })
    expect(await send(instance)).toEqual({ status: 200, body: { ok: true, intent: 'intent for a/b.jpg' } })
    const after = Date.now()
    expect(order).toEqual(['hook a/b.jpg 42', 'handler'])
    expect(hookContext?.request.url).toBe('/oss/callback')
    expect(hookContext?.signal.aborted).toBe(false)
    expect(hookContext?.remainingMs).toBeGreaterThan(0)
    expect(hookContext?.remainingMs).toBeLessThanOrEqual(3000)
    expect(hookContext?.deadlineAt).toBe((hookContext?.receivedAt ?? 0) + 3000)
    expect(hookContext?.receivedAt).toBeGreaterThanOrEqual(before - 1)
    expect(hookContext?.receivedAt).toBeLessThanOrEqual(after)
    // Hook and handler share one deadline.
    expect(handlerContext?.deadlineAt).toBe(hookContext?.deadlineAt)
    expect(Object.keys(handlerContext ?? {}).sort()).toEqual(['deadlineAt', 'intent', 'receivedAt', 'remainingMs', 'request', 'signal'])
  })

  it('an async hook that returns nothing adds nothing, and the handler still answers', async () => {
    let keys: string[] = []
    const instance = await start({
      preHandler: async () => { await Promise.resolve() },
      handler: (_cb, ctx) => { keys = Object.keys(ctx).sort(); return { ok: true } }
    })
    expect(await send(instance)).toEqual({ status: 200, body: { ok: true } })
    expect(keys).toEqual(['deadlineAt', 'receivedAt', 'remainingMs', 'request', 'signal'])
  })

  it('is not called for a refused callback: a bad signature, or a bucket off the list', async () => {
    let calls = 0
    let handled = 0
    const instance = await start({
      buckets: ['demo-bucket'],
      preHandler: () => { calls++; return undefined },
      handler: () => { handled++; return { ok: true } }
    })
    expect((await send(instance, undefined, true)).body).toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
    expect((await send(instance, 'bucket=other&object=a%2Fb.jpg&size=42')).body).toMatchObject({ statusCode: 403, code: 'OSS_CB_ERR_BUCKET_NOT_ALLOWED' })
    expect([calls, handled]).toEqual([0, 0])
    expect((await send(instance)).status).toBe(200)
    expect([calls, handled]).toEqual([1, 1])
  })

  it('a coded error it throws, sync or async, is answered with its code, and the handler never runs', async () => {
    let handled = 0
    const handler = (): unknown => { handled++; return { ok: true } }
    const used = { status: 409, body: { statusCode: 409, code: 'OSS_CB_ERR_TICKET_USED', error: 'Conflict', message: 'The upload ticket was already used' } }
    await start({ preHandler: () => { throw ossError('TICKET_USED', 'seen before') }, handler })
    expect(await send(app as FastifyInstance)).toEqual(used)
    await app?.close()
    await start({ preHandler: async () => { await Promise.resolve(); throw ossError('TICKET_USED', 'seen before') }, handler })
    expect(await send(app as FastifyInstance)).toEqual(used)
    expect(handled).toBe(0)
  })

  it('anything else it throws, or a value that is not an object, or a field that would replace the context\'s, is 500 OSS_CB_ERR_HANDLER_FAILED', async () => {
    const failed = { statusCode: 500, code: 'OSS_CB_ERR_HANDLER_FAILED' }
    const hooks: PreHandlerHook[] = [
      () => { throw new Error('intent store down') },
      async () => { throw new Error('intent store down') },
      () => 'yes' as unknown as object,
      () => ({ remainingMs: 1e9 }),
      () => ({ signal: new AbortController().signal })
    ]
    let handled = 0
    for (const preHandler of hooks) {
      await start({ preHandler, handler: () => { handled++; return { ok: true } } })
      const res = await send(app as FastifyInstance)
      expect(res.status, String(preHandler)).toBe(500)
      expect(res.body).toMatchObject(failed)
      await app?.close()
      app = undefined
    }
    expect(handled).toBe(0)
  })

  it('a hook that outlasts the deadline gets 504 OSS_CB_ERR_DEADLINE_EXCEEDED, its signal aborts, and the handler never runs', async () => {
    let reason: unknown
    let handled = 0
    const instance = await start({
      deadlineMs: 200,
      preHandler: async (_cb, ctx) => {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
        reason = ctx.signal.reason
        return { intent: 'too late' }
      },
      handler: () => { handled++; return { ok: true } }
    })
    const started = Date.now()
    const res = await send(instance)
    expect(res).toEqual({ status: 504, body: { statusCode: 504, code: 'OSS_CB_ERR_DEADLINE_EXCEEDED', error: 'Gateway Timeout', message: 'The callback deadline was exceeded' } })
    expect(Date.now() - started).toBeLessThan(2000)
    expect(reason).toMatchObject({ code: 'OSS_CB_ERR_DEADLINE_EXCEEDED' })
    expect(handled).toBe(0)
  })

  it('a hook and handler that each take part of the deadline share it: the handler gets only what is left', async () => {
    let remaining = Infinity
    const instance = await start({
      deadlineMs: 400,
      preHandler: async () => { await new Promise((resolve) => setTimeout(resolve, 150)) },
      handler: async (_cb, ctx) => {
        remaining = ctx.remainingMs
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
        return { late: true }
      }
    })
    const started = Date.now()
    expect((await send(instance)).body).toMatchObject({ code: 'OSS_CB_ERR_DEADLINE_EXCEEDED' })
    expect(remaining).toBeLessThanOrEqual(400 - 140)
    expect(Date.now() - started).toBeLessThan(1500)
  })

  it('refuses a preHandler that is not a function at registration', async () => {
    app = Fastify()
    await expect(app.register(ossCallback, { preHandler: 'tickets' as unknown as PreHandlerHook }).ready()).rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION', message: /preHandler must be a function/ })
  })
})
