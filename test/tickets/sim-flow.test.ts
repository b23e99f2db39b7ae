import type { FastifyInstance } from 'fastify'
import { createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import type { IssuedTicket } from '../../src/tickets/issuer.js'
import type { UploadTicket } from '../../src/tickets/store.js'

// Tickets against the simulator, over real sockets: the policies our issuer signs are
// the ones the simulator (OSS's rules) accepts, and the ticket makes a second use fail.
const TOKEN = 'sim-flow-token-0123456789'

describe('tickets through the simulator (PostObject, real sockets)', () => {
  let sim: Simulator
  const receivers: FastifyInstance[] = []
  const seen: Array<UploadTicket | undefined> = []

  async function receiver (extra: Record<string, string> = {}): Promise<{ app: FastifyInstance, origin: string }> {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => { resolve(p) }) })
    })
    const app = await buildApp(loadConfig({
      LOG_LEVEL: 'silent',
      OSS_CALLBACK_KEY_ORIGINS: sim.origin,
      OSS_CALLBACK_TICKET_TOKEN: TOKEN,
      OSS_ACCESS_KEY_ID: sim.credentials.accessKeyId,
      OSS_ACCESS_KEY_SECRET: sim.credentials.accessKeySecret,
      OSS_BUCKET: 'flow-bucket',
      OSS_ENDPOINT: sim.origin,
      OSS_REGION: 'cn-hangzhou',
      OSS_CALLBACK_PUBLIC_URL: `http://127.0.0.1:${port}/oss/callback`,
      OSS_CALLBACK_TICKET_MAX_SIZE_BYTES: '1000',
      ...extra
    }), { handler: (cb, ctx) => { seen.push(ctx.ticket); return { Status: 'OK', key: cb.system.object, size: cb.system.size } } })
    receivers.push(app)
    const origin = await app.listen({ host: '127.0.0.1', port })
    return { app, origin }
  }

  async function ticket (origin: string, body: object): Promise<IssuedTicket> {
    const res = await fetch(`${origin}/oss/upload-tickets`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body)
    })
    expect(res.status).toBe(200)
    return await res.json() as IssuedTicket
  }

  async function post (issued: IssuedTicket, file: Buffer, patch: Record<string, string> = {}, type?: string): Promise<{ status: number, text: string }> {
    const form = new FormData()
    for (const [name, value] of Object.entries({ ...issued.fields, ...patch })) form.append(name, value)
    form.append('file', new Blob([file], type === undefined ? {} : { type }), 'f.bin')
    const res = await fetch(issued.uploadUrl, { method: 'POST', body: form })
    return { status: res.status, text: await res.text() }
  }

  beforeAll(async () => { sim = await startSimulator({ port: 0 }) })
  afterAll(async () => {
    for (const app of receivers) await app.close()
    await sim?.close()
  })

  it('a V4 ticket uploads once with the reply relayed; posting the same form again stores it but the callback gets 409, so OSS answers 203', async () => {
    const { origin } = await receiver()
    const issued = await ticket(origin, { filename: 'report.pdf', contentType: 'application/pdf', size: 5, subject: 'u1' })
    const first = await post(issued, Buffer.from('%PDF-'))
    expect(first.status).toBe(200)
    expect(JSON.parse(first.text)).toEqual({ Status: 'OK', key: issued.key, size: 5 })
    expect(seen.at(-1)).toMatchObject({ id: issued.ticket, subject: 'u1', contentTypes: ['application/pdf'] })
    const again = await post(issued, Buffer.from('%PDF-'))
    expect(again.status).toBe(203)
    expect(again.text).toContain('<Code>CallbackFailed</Code>')
    expect(again.text).toContain('<Message>Error status : 409.</Message>')
  })

  it('the policy holds: another key, another size, another type or another callback is refused by OSS before any callback', async () => {
    const { origin } = await receiver()
    const issued = await ticket(origin, { contentType: 'image/png', size: 4 })
    const before = seen.length
    const otherCallback = Buffer.from(JSON.stringify({ callbackUrl: 'http://127.0.0.1:9/evil', callbackBody: 'a=${object}' })).toString('base64')
    const attempts: Array<[Buffer, Record<string, string>]> = [
      [Buffer.alloc(4), { key: 'uploads/elsewhere.png' }],
      [Buffer.alloc(5), {}],
      [Buffer.alloc(3), {}],
      [Buffer.alloc(4), { 'Content-Type': 'text/html' }],
      [Buffer.alloc(4), { callback: otherCallback }],
      [Buffer.alloc(4), { 'x:ticket': 'A'.repeat(24) }]
    ]
    for (const [file, patch] of attempts) {
      const res = await post(issued, file, patch)
      expect(res.status, JSON.stringify(patch)).toBeGreaterThanOrEqual(400)
      expect(res.text).toMatch(/<Code>(AccessDenied|EntityTooLarge|EntityTooSmall|InvalidPolicyDocument)<\/Code>/)
    }
    expect(seen.length).toBe(before)
    expect((await post(issued, Buffer.alloc(4))).status).toBe(200)
  })

  it('V1 form signatures work too, and OSS refuses a form once its policy has expired', async () => {
    const { origin } = await receiver({ OSS_CALLBACK_TICKET_SIGNATURE_VERSION: 'v1' })
    const issued = await ticket(origin, {})
    expect(issued.fields).toHaveProperty('Signature')
    expect((await post(issued, Buffer.from('x'))).status).toBe(200)
    // The same OSS eleven minutes later: the ten-minute policy has expired.
    const later = await startSimulator({ port: 0, now: () => new Date(Date.now() + 11 * 60_000) })
    try {
      const late = await ticket(origin, {})
      const res = await post({ ...late, uploadUrl: `${later.origin}/flow-bucket` }, Buffer.from('x'))
      expect(res.status).toBe(403)
      expect(res.text).toContain('Policy expired')
    } finally {
      await later.close()
    }
  })
})
