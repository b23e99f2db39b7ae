import Fastify, { type FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { ossCallback, type CallbackContext } from '../../src/receiver/plugin.js'
import { createMemoryTicketStore, createUploadTickets, ossTickets, type IssuedTicket, type TicketContext, type TicketStore, type UploadTickets } from '../../src/tickets.js'
import { useTestKeyServer } from '../helpers/key-server.js'
import { callbackForTicket } from '../helpers/tickets.js'

// The ticket plugin on its own, and a handler that consumes the ticket itself (instead of the preHandler hook).
const keys = useTestKeyServer()

function makeTickets (store?: TicketStore): UploadTickets {
  return createUploadTickets({
    ...(store === undefined ? {} : { store }),
    accessKeyId: 'ak', accessKeySecret: 'sk', bucket: 'demo-bucket', endpoint: 'https://oss-cn-hangzhou.aliyuncs.com',
    region: 'cn-hangzhou', callbackUrl: 'https://app.example.com/oss/callback'
  })
}

async function issue (app: FastifyInstance, url = '/oss/upload-tickets'): Promise<IssuedTicket> {
  const res = await app.inject({ method: 'POST', url, payload: { filename: 'a.png' } })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}

describe('ossTickets, the ticket route plugin', () => {
  it('issues tickets in an app without the callback plugin, and leaves the app\'s own JSON routes and errors alone', async () => {
    const app = Fastify()
    const tickets = makeTickets()
    app.post('/api/echo', async (request) => ({ echoed: request.body }))
    app.get('/api/boom', async () => { throw new Error('app error') })
    await app.register(ossTickets, { tickets, authorize: () => ({ subject: 'u1' }), path: '/tickets' })
    const issued = await issue(app, '/tickets')
    expect(issued.key).toMatch(/^uploads\/[A-Za-z0-9_-]{16}\/a\.png$/)
    // The app's JSON parser and error handler are its own: the plugin's stay inside it.
    const echo = await app.inject({ method: 'POST', url: '/api/echo', payload: { big: 'x'.repeat(20_000) } })
    expect(echo.statusCode).toBe(200)
    expect(echo.json<{ echoed: { big: string } }>().echoed.big).toHaveLength(20_000)
    const boom = await app.inject({ method: 'GET', url: '/api/boom' })
    expect(boom.statusCode).toBe(500)
    expect(boom.json()).not.toHaveProperty('code', 'OSS_CB_ERR_INTERNAL')
    // Its own refusals are coded.
    const invalid = await app.inject({ method: 'POST', url: '/tickets', headers: { 'content-type': 'application/json' }, payload: '{' })
    expect(invalid.json()).toMatchObject({ statusCode: 400, code: 'OSS_CB_ERR_TICKET_REQUEST_INVALID' })
    await app.close()
  })

  it('carries fastify-plugin metadata and closes the memory store it made when the app closes', async () => {
    expect((ossTickets as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')]).toBe('oss-callback-tickets')
    const app = Fastify()
    const tickets = makeTickets()
    await app.register(ossTickets, { tickets, authorize: () => true })
    const issued = await issue(app)
    await app.close()
    expect(await tickets.store.consume(issued.ticket)).toEqual({ status: 'unknown' })
  })

  it('refuses a missing issuer or authorize, and a path the callback route already holds', async () => {
    const tickets = makeTickets()
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ authorize: () => true }, /tickets is required/],
      [{ tickets }, /authorize is required/],
      [{ tickets, authorize: () => true, path: 'no-slash' }, /tickets path/],
      [{ tickets, authorize: () => true, path: '/oss/callback' }, /tickets path/]
    ]
    for (const [options, message] of cases) {
      const app = Fastify()
      await app.register(ossCallback, { path: '/oss/callback' })
      await expect(app.register(ossTickets, options as never).ready(), String(message)).rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION', message })
      await app.close()
    }
  })

  it('a handler can consume the ticket itself with bindCallback and its own context\'s deadline, once: a replay gets 409', async () => {
    const app = Fastify()
    const memory = createMemoryTicketStore()
    const deadlines: Array<number | undefined> = []
    const tickets = makeTickets({ ...memory, consume: async (id, options) => { deadlines.push(options?.deadlineAt); return await memory.consume(id, options) } })
    const handlerDeadlines: number[] = []
    const committed: string[] = []
    await app.register(ossTickets, { tickets, authorize: () => ({ subject: 'u2' }) })
    await app.register(ossCallback, {
      keyOrigins: [keys.origin()],
      handler: async (cb, ctx: CallbackContext<TicketContext>) => {
        expect(ctx.ticket).toBeUndefined()
        handlerDeadlines.push(ctx.deadlineAt)
        const { ticket } = await tickets.bindCallback(cb, ctx)
        committed.push(`${ticket?.subject ?? '?'} ${cb.system.object ?? ''}`)
        return { ok: true, by: ticket?.subject }
      }
    })
    const issued = await issue(app)
    const cb = callbackForTicket(issued, keys.url())
    const first = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect([first.statusCode, first.json()]).toEqual([200, { ok: true, by: 'u2' }])
    const replay = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect(replay.json()).toMatchObject({ statusCode: 409, code: 'OSS_CB_ERR_TICKET_USED' })
    expect(committed).toEqual([`u2 ${issued.key}`])
    expect(deadlines).toEqual(handlerDeadlines)
    expect(deadlines).toHaveLength(2)
    await app.close()
  })
})
