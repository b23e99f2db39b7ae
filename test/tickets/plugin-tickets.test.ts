import Fastify, { type FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { ossCallback, type CallbackContext } from '../../src/receiver/plugin.js'
import { ossTickets } from '../../src/tickets.js'
import { createUploadTickets, type IssuedTicket, type TicketContext, type UploadTicketsOptions } from '../../src/tickets/issuer.js'
import type { TicketRoutesOptions } from '../../src/tickets/route.js'
import { createMemoryTicketStore, type TicketStore, type UploadTicket } from '../../src/tickets/store.js'
import { useTestKeyServer } from '../helpers/key-server.js'
import { callbackForTicket } from '../helpers/tickets.js'

const T0 = Date.UTC(2026, 10, 26, 6, 0, 0)
const keys = useTestKeyServer()

interface Harness {
  app: FastifyInstance
  clock: { now: number }
  seen: Array<{ key: string | undefined, ticket: UploadTicket | undefined }>
  issue: (body?: unknown, user?: string) => Promise<IssuedTicket>
  send: (cb: ReturnType<typeof callbackForTicket>) => Promise<{ statusCode: number, json: () => unknown, body: string }>
}

async function harness (overrides: Partial<PluginTicketOptions> = {}, plugin: { buckets?: string[] } = {}): Promise<Harness> {
  const clock = { now: T0 }
  const seen: Harness['seen'] = []
  const app = Fastify()
  const ticketOptions: PluginTicketOptions = {
    accessKeyId: 'ak',
    accessKeySecret: 'sk',
    bucket: 'demo-bucket',
    endpoint: 'https://oss-cn-hangzhou.aliyuncs.com',
    region: 'cn-hangzhou',
    callbackUrl: 'https://app.example.com/oss/callback',
    now: () => clock.now,
    authorize: (request) => {
      const user = request.headers['x-user']
      if (user === 'boom') throw new Error('session store down')
      return typeof user === 'string' ? { subject: user } : false
    },
    ...overrides
  }
  const { authorize, path, ...issuer } = ticketOptions
  const tickets = createUploadTickets(issuer)
  await app.register(ossCallback, {
    path: '/oss/callback',
    keyOrigins: [keys.origin()],
    ...plugin,
    preHandler: tickets.bindCallback,
    handler: (cb, ctx: CallbackContext<TicketContext>) => {
      seen.push({ key: cb.system.object, ticket: ctx.ticket })
      return { ok: true, key: cb.system.object, by: ctx.ticket?.subject ?? null }
    }
  })
  await app.register(ossTickets, { tickets, authorize, ...(path === undefined ? {} : { path }) })
  await app.ready()
  return {
    app,
    clock,
    seen,
    issue: async (body = { filename: 'photo.png' }, user = 'alice') => {
      const res = await app.inject({ method: 'POST', url: '/oss/upload-tickets', headers: { 'x-user': user }, payload: body as object })
      expect(res.statusCode, res.body).toBe(200)
      return res.json()
    },
    send: (cb) => app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
  }
}

function decodePolicy (issued: IssuedTicket): { expiration: string, conditions: unknown[] } {
  return JSON.parse(Buffer.from(issued.fields.policy as string, 'base64').toString('utf8'))
}

/** The ticket options as one object: the issuer's, and the ticket route's `authorize` and `path`. */
type PluginTicketOptions = UploadTicketsOptions & Pick<TicketRoutesOptions, 'authorize' | 'path'>

/** Registers the ticket route and binds the callback plugin to its tickets, as an app does. */
async function registerTickets (app: FastifyInstance, options: PluginTicketOptions): Promise<void> {
  const { authorize, path, ...issuer } = options
  await app.register(ossTickets, { tickets: createUploadTickets(issuer), authorize, ...(path === undefined ? {} : { path }) })
}

const errorBody = (statusCode: number, code: string, error: string, message: string): object => ({ statusCode, code, error, message })

describe('ticket endpoint (plugin, app authorize hook)', () => {
  it('issues a V4 form whose policy pins bucket, key, size, callback and ticket, expiring in UTC', async () => {
    const h = await harness()
    const res = await h.app.inject({ method: 'POST', url: '/oss/upload-tickets', headers: { 'x-user': 'alice' }, payload: { filename: '../My Photo (1).png' } })
    expect(res.statusCode).toBe(200)
    expect(res.headers['cache-control']).toBe('no-store')
    const issued = res.json<IssuedTicket>()
    expect(issued.uploadUrl).toBe('https://demo-bucket.oss-cn-hangzhou.aliyuncs.com')
    expect(issued.key).toMatch(/^uploads\/[A-Za-z0-9_-]{16}\/My Photo _1_\.png$/)
    expect(issued.ticket).toMatch(/^[A-Za-z0-9_-]{24}$/)
    expect(issued.expiresAt).toBe('2026-11-26T06:10:00.000Z')
    expect(issued.maxSizeBytes).toBe(104857600)
    expect(Object.keys(issued.fields)).toEqual([
      'key', 'policy', 'x-oss-signature-version', 'x-oss-credential', 'x-oss-date', 'x-oss-signature', 'callback', 'x:ticket'
    ])
    expect(issued.fields['x:ticket']).toBe(issued.ticket)
    expect(issued.fields['x-oss-credential']).toBe('ak/20261126/cn-hangzhou/oss/aliyun_v4_request')
    const policy = decodePolicy(issued)
    expect(policy.expiration).toBe(issued.expiresAt)
    expect(policy.conditions).toEqual([
      { bucket: 'demo-bucket' },
      ['eq', '$key', issued.key],
      ['content-length-range', 0, 104857600],
      { callback: issued.fields.callback },
      ['eq', '$x:ticket', issued.ticket],
      { 'x-oss-signature-version': 'OSS4-HMAC-SHA256' },
      { 'x-oss-credential': 'ak/20261126/cn-hangzhou/oss/aliyun_v4_request' },
      { 'x-oss-date': '20261126T060000Z' }
    ])
    const callback = JSON.parse(Buffer.from(issued.fields.callback as string, 'base64').toString('utf8'))
    expect(callback).toMatchObject({ callbackUrl: 'https://app.example.com/oss/callback', callbackBodyType: 'application/x-www-form-urlencoded' })
    expect(callback.callbackBody).toContain('x:ticket=${x:ticket}')
    await h.app.close()
  })

  it('keeps a suggested key under the prefix, pins a declared type and size, and signs V1 on request', async () => {
    const h = await harness({ signatureVersion: 'v1', contentTypes: ['image/png', 'image/jpeg'], maxSizeBytes: 1000 })
    const issued = await h.issue({ key: 'avatars/alice.png', contentType: 'Image/PNG', size: 42 })
    expect(issued.key).toBe('uploads/avatars/alice.png')
    expect(Object.keys(issued.fields)).toEqual(['key', 'OSSAccessKeyId', 'policy', 'Signature', 'callback', 'x:ticket', 'Content-Type'])
    expect(issued.fields['Content-Type']).toBe('image/png')
    expect(decodePolicy(issued).conditions).toEqual(expect.arrayContaining([['content-length-range', 42, 42], ['eq', '$content-type', 'image/png']]))
    const open = await h.issue({})
    expect(decodePolicy(open).conditions).toContainEqual(['in', '$content-type', ['image/png', 'image/jpeg']])
    expect(open.key).toMatch(/^uploads\/[A-Za-z0-9_-]{16}\/file$/)
    await h.app.close()
  })

  it('refuses bad ticket requests with coded errors', async () => {
    const h = await harness({ contentTypes: ['image/png'], maxSizeBytes: 1000 })
    const post = async (payload: string, contentType = 'application/json', user = 'alice'): Promise<{ statusCode: number, json: () => unknown }> =>
      await h.app.inject({ method: 'POST', url: '/oss/upload-tickets', headers: { 'x-user': user, 'content-type': contentType }, payload })
    const invalid = errorBody(400, 'OSS_CB_ERR_TICKET_REQUEST_INVALID', 'Bad Request', 'The upload ticket request is invalid')
    for (const key of ['../etc/passwd', '/abs', 'a//b', 'a/./b', 'a\\b', 'a\u0000b']) {
      const res = await post(JSON.stringify({ key }))
      expect([res.statusCode, res.json()], key).toEqual([400, invalid])
    }
    for (const payload of ['{', '[1]', '"x"', '{"size":-1}', '{"size":1.5}', '{"key":5}', '{"contentType":"image/png; charset=x"}']) {
      const res = await post(payload)
      expect([res.statusCode, res.json()], payload).toEqual([400, invalid])
    }
    expect((await post('key=a', 'application/x-www-form-urlencoded')).json()).toEqual(invalid)
    expect((await post(JSON.stringify({ size: 1001 }))).json()).toEqual(errorBody(413, 'OSS_CB_ERR_TICKET_TOO_LARGE', 'Payload Too Large', 'The upload is larger than allowed'))
    expect((await post(JSON.stringify({ contentType: 'text/html' }))).json())
      .toEqual(errorBody(415, 'OSS_CB_ERR_TICKET_CONTENT_TYPE', 'Unsupported Media Type', 'The upload content type is not allowed'))
    const denied = await h.app.inject({ method: 'POST', url: '/oss/upload-tickets' })
    expect([denied.statusCode, denied.json()]).toEqual([403, errorBody(403, 'OSS_CB_ERR_TICKET_DENIED', 'Forbidden', 'The upload ticket request was refused')])
    const boom = await post('{}', 'application/json', 'boom')
    expect([boom.statusCode, boom.json()]).toEqual([500, errorBody(500, 'OSS_CB_ERR_INTERNAL', 'Internal Server Error', 'Internal error')])
    const wrongMethod = await h.app.inject({ method: 'GET', url: '/oss/upload-tickets' })
    expect(wrongMethod.statusCode).toBe(405)
    expect(wrongMethod.headers.allow).toBe('POST')
    // An empty body is an empty request: a ticket with a generated key.
    expect((await h.app.inject({ method: 'POST', url: '/oss/upload-tickets', headers: { 'x-user': 'bob' } })).statusCode).toBe(200)
    await h.app.close()
  })

  it('refuses options that would make tickets unsafe or unusable', async () => {
    const base = { accessKeyId: 'ak', accessKeySecret: 'sk', bucket: 'demo-bucket', endpoint: 'https://oss-cn-hangzhou.aliyuncs.com', region: 'cn-hangzhou', callbackUrl: 'https://app.example.com/cb', authorize: () => true }
    const cases: Array<[Partial<PluginTicketOptions> & { path?: string }, RegExp]> = [
      [{ authorize: undefined as unknown as PluginTicketOptions['authorize'] }, /authorize is required/],
      [{ region: undefined }, /region .* required for V4/],
      [{ endpoint: 'ftp://x' }, /endpoint/],
      [{ endpoint: 'https://oss.example.com/path' }, /endpoint/],
      [{ callbackUrl: 'nota url with spaces' }, /callbackUrl/],
      [{ uploadPrefix: '/abs/' }, /uploadPrefix/],
      [{ uploadPrefix: 'a/../b/' }, /uploadPrefix/],
      [{ contentTypes: ['png'] }, /contentTypes/],
      [{ maxSizeBytes: 6 * 1024 ** 3 }, /maxSizeBytes/],
      [{ expirySeconds: 0 }, /expirySeconds/],
      [{ path: '/oss/callback' }, /tickets.path/]
    ]
    for (const [patch, message] of cases) {
      const app = Fastify()
      await expect((async () => {
        await app.register(ossCallback, { path: '/oss/callback' })
        await registerTickets(app, { ...base, ...patch })
        await app.ready()
      })(), String(message))
        .rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION', message })
      await app.close()
    }
  })
})

describe('callbacks bound to tickets', () => {
  it('accepts the first callback of a ticket, shows the handler who asked and when, and refuses a replay with 409', async () => {
    const h = await harness()
    const issued = await h.issue({ filename: 'a b+c.png' }, 'user-42')
    const cb = callbackForTicket(issued, keys.url())
    const first = await h.send(cb)
    expect([first.statusCode, first.json()]).toEqual([200, { ok: true, key: issued.key, by: 'user-42' }])
    expect(h.seen[0]?.ticket).toEqual({
      id: issued.ticket, bucket: 'demo-bucket', key: issued.key, minSizeBytes: 0, maxSizeBytes: 104857600,
      subject: 'user-42', issuedAt: '2026-11-26T06:00:00.000Z', expiresAt: '2026-11-26T06:10:00.000Z'
    })
    const replay = await h.send(cb)
    expect([replay.statusCode, replay.json()]).toEqual([409, errorBody(409, 'OSS_CB_ERR_TICKET_USED', 'Conflict', 'The upload ticket was already used')])
    expect(h.seen).toHaveLength(1)
    await h.app.close()
  })

  it('answers unknown, missing and malformed tickets with 403', async () => {
    const h = await harness()
    const issued = await h.issue()
    const unknown = await h.send(callbackForTicket(issued, keys.url(), { ticketId: 'A'.repeat(24) }))
    expect([unknown.statusCode, unknown.json()]).toEqual([403, errorBody(403, 'OSS_CB_ERR_TICKET_UNKNOWN', 'Forbidden', 'The upload ticket is unknown')])
    const malformed = await h.send(callbackForTicket(issued, keys.url(), { ticketId: 'not a ticket' }))
    expect(malformed.json()).toEqual(errorBody(403, 'OSS_CB_ERR_TICKET_UNKNOWN', 'Forbidden', 'The upload ticket is unknown'))
    const missing = await h.send(callbackForTicket(issued, keys.url(), { ticketId: null }))
    expect([missing.statusCode, missing.json()]).toEqual([403, errorBody(403, 'OSS_CB_ERR_TICKET_MISSING', 'Forbidden', 'The callback carries no upload ticket')])
    expect(h.seen).toHaveLength(0)
    // None of these consumed the real ticket.
    expect((await h.send(callbackForTicket(issued, keys.url()))).statusCode).toBe(200)
    await h.app.close()
  })

  it('accepts a callback within the grace period after expiry, and refuses it after', async () => {
    const h = await harness({ expirySeconds: 60, callbackGraceSeconds: 120 })
    const late = await h.issue()
    const tooLate = await h.issue()
    h.clock.now = T0 + 170_000
    expect((await h.send(callbackForTicket(late, keys.url()))).statusCode).toBe(200)
    h.clock.now = T0 + 181_000
    const res = await h.send(callbackForTicket(tooLate, keys.url()))
    expect([res.statusCode, res.json()]).toEqual([403, errorBody(403, 'OSS_CB_ERR_TICKET_EXPIRED', 'Forbidden', 'The upload ticket has expired')])
    await h.app.close()
  })

  it('refuses a callback whose bucket, key or size differs from its ticket, and burns the ticket', async () => {
    const h = await harness({ maxSizeBytes: 100 })
    const mismatch = errorBody(403, 'OSS_CB_ERR_TICKET_MISMATCH', 'Forbidden', 'The callback does not match its upload ticket')
    for (const upload of [{ bucket: 'other-bucket' }, { object: 'uploads/elsewhere.png' }, { size: 101 }]) {
      const issued = await h.issue()
      const res = await h.send(callbackForTicket(issued, keys.url(), upload))
      expect([res.statusCode, res.json()], JSON.stringify(upload)).toEqual([403, mismatch])
      expect((await h.send(callbackForTicket(issued, keys.url()))).statusCode).toBe(409)
    }
    await h.app.close()
  })

  it('lets callbacks without a ticket through only when configured, and still checks those that carry one', async () => {
    const h = await harness({ allowCallbacksWithoutTicket: true })
    const issued = await h.issue()
    const none = await h.send(callbackForTicket(issued, keys.url(), { ticketId: null }))
    expect(none.statusCode).toBe(200)
    expect(h.seen[0]?.ticket).toBeUndefined()
    expect((await h.send(callbackForTicket(issued, keys.url()))).statusCode).toBe(200)
    expect((await h.send(callbackForTicket(issued, keys.url()))).statusCode).toBe(409)
    await h.app.close()
  })

  it('with a bucket list, a verified callback for another bucket is refused 403 before its ticket is consumed or the handler runs', async () => {
    const h = await harness({ allowCallbacksWithoutTicket: true }, { buckets: ['demo-bucket'] })
    const issued = await h.issue()
    const foreign = await h.send(callbackForTicket(issued, keys.url(), { bucket: 'someone-elses' }))
    expect([foreign.statusCode, foreign.json()]).toEqual([403, errorBody(403, 'OSS_CB_ERR_BUCKET_NOT_ALLOWED', 'Forbidden', 'The callback is for a bucket that is not allowed')])
    const ticketless = await h.send(callbackForTicket(issued, keys.url(), { bucket: 'someone-elses', ticketId: null }))
    expect(ticketless.json()).toMatchObject({ code: 'OSS_CB_ERR_BUCKET_NOT_ALLOWED' })
    expect(h.seen).toHaveLength(0)
    // The ticket was not spent by the refused callback.
    expect((await h.send(callbackForTicket(issued, keys.url()))).statusCode).toBe(200)
    await h.app.close()
  })

  it('hands the callback\'s deadline to the store\'s consume, so a store that runs it late can leave the ticket alone', async () => {
    const memory = createMemoryTicketStore()
    const deadlines: Array<number | undefined> = []
    const store: TicketStore = { ...memory, consume: async (id, options) => { deadlines.push(options?.deadlineAt); return await memory.consume(id, options) } }
    const h = await harness({ store })
    const cb = callbackForTicket(await h.issue(), keys.url())
    const before = Date.now()
    expect((await h.send(cb)).statusCode).toBe(200)
    const after = Date.now()
    // The plugin's default deadline is 4500 ms from the request's arrival.
    expect(deadlines).toHaveLength(1)
    expect(deadlines[0]).toBeGreaterThanOrEqual(before + 4500 - 1)
    expect(deadlines[0]).toBeLessThanOrEqual(after + 4500)
    await h.app.close()
  })

  it('a callback whose signature fails never touches the ticket', async () => {
    const h = await harness()
    const issued = await h.issue()
    const cb = callbackForTicket(issued, keys.url())
    const forged = { ...cb, body: Buffer.from(cb.body.toString().replace('size=10', 'size=11')) }
    expect((await h.send(forged)).json()).toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
    expect((await h.send(cb)).statusCode).toBe(200)
    await h.app.close()
  })
})
