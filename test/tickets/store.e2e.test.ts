import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRedisTicketStore } from '../../src/tickets/redis-store.js'
import { createMemoryTicketStore, type TicketStore, type UploadTicket } from '../../src/tickets/store.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

let counter = 0
function ticket (): UploadTicket {
  counter++
  return {
    id: `T${String(counter).padStart(23, '0')}`,
    bucket: 'b-1',
    key: `uploads/${counter}`,
    minSizeBytes: 0,
    maxSizeBytes: 10,
    subject: 'alice',
    issuedAt: '2026-11-26T06:00:00.000Z',
    expiresAt: '2026-11-26T06:10:00.000Z'
  }
}

function contract (name: string, make: () => TicketStore): void {
  describe(`${name} ticket store`, () => {
    it('returns a ticket once, then says used; an unknown id is unknown', async () => {
      const store = make()
      const t = ticket()
      await store.save(t, 60_000)
      expect(await store.consume(t.id)).toEqual({ status: 'consumed', ticket: t })
      expect(await store.consume(t.id)).toEqual({ status: 'used' })
      expect(await store.consume('U'.repeat(24))).toEqual({ status: 'unknown' })
      await store.close()
    })

    it('of 100 concurrent consumes of one ticket, exactly one gets it', async () => {
      const store = make()
      const t = ticket()
      await store.save(t, 60_000)
      const results = await Promise.all(Array.from({ length: 100 }, () => store.consume(t.id)))
      expect(results.filter((r) => r.status === 'consumed')).toHaveLength(1)
      expect(results.filter((r) => r.status === 'used')).toHaveLength(99)
      await store.close()
    })

    it('refuses to overwrite an existing id', async () => {
      const store = make()
      const t = ticket()
      await store.save(t, 60_000)
      await expect(store.save({ ...t, key: 'other' }, 60_000)).rejects.toThrow(/already exists/)
      expect(await store.consume(t.id)).toEqual({ status: 'consumed', ticket: t })
      await store.close()
    })
  })
}

contract('memory', () => createMemoryTicketStore())

describe('memory ticket store', () => {
  it('forgets tickets (used or not) after their retention, by its clock', async () => {
    const clock = { now: 1000 }
    const store = createMemoryTicketStore({ now: () => clock.now })
    const a = ticket()
    const b = ticket()
    await store.save(a, 500)
    await store.save(b, 500)
    expect((await store.consume(a.id)).status).toBe('consumed')
    clock.now = 1500
    expect(await store.consume(a.id)).toEqual({ status: 'unknown' })
    expect(await store.consume(b.id)).toEqual({ status: 'unknown' })
  })

  it('holds at most maxTickets live tickets, making room from expired ones', async () => {
    const clock = { now: 0 }
    const store = createMemoryTicketStore({ now: () => clock.now, maxTickets: 2 })
    await store.save(ticket(), 100)
    await store.save(ticket(), 1000)
    await expect(store.save(ticket(), 100)).rejects.toThrow(/full/)
    clock.now = 100
    await store.save(ticket(), 100)
    expect(() => createMemoryTicketStore({ maxTickets: 0 })).toThrow(/maxTickets/)
  })
})

describe('Redis ticket store (real redis-server)', () => {
  let redis: RedisServer
  const clients: Redis[] = []
  beforeAll(async () => { redis = await startRedisServer() })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await redis?.stop()
  })

  contract('Redis', () => createRedisTicketStore({ url: redis.url }))

  it('two stores on one Redis share tickets, and a concurrent consume from both gives one winner', async () => {
    const a = createRedisTicketStore({ url: redis.url })
    const b = createRedisTicketStore({ url: redis.url })
    for (let i = 0; i < 20; i++) {
      const t = ticket()
      await a.save(t, 60_000)
      const results = await Promise.all([a.consume(t.id), b.consume(t.id), a.consume(t.id), b.consume(t.id)])
      expect(results.filter((r) => r.status === 'consumed')).toEqual([{ status: 'consumed', ticket: t }])
    }
    await a.close()
    await b.close()
  })

  it('sets a TTL, so Redis forgets the ticket and its used marker', async () => {
    const store = createRedisTicketStore({ url: redis.url, keyPrefix: 'ttl-test:' })
    const t = ticket()
    await store.save(t, 60_000)
    const pttl = await store.client.pttl(`ttl-test:${t.id}`)
    expect(pttl).toBeGreaterThan(50_000)
    expect(pttl).toBeLessThanOrEqual(60_000)
    await store.consume(t.id)
    // The used marker keeps the ticket's TTL rather than living forever.
    expect(await store.client.pttl(`ttl-test:${t.id}`)).toBeGreaterThan(50_000)
    const short = ticket()
    await store.save(short, 30)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await store.consume(short.id)).toEqual({ status: 'unknown' })
    await store.close()
  })

  it('uses an injected client without closing it', async () => {
    const client = new Redis(redis.url)
    clients.push(client)
    const store = createRedisTicketStore({ client })
    const t = ticket()
    await store.save(t, 60_000)
    await store.close()
    expect(await client.exists(`oss-callback:ticket:${t.id}`)).toBe(1)
    expect(() => createRedisTicketStore({ url: 'http://127.0.0.1:1' })).toThrow(/redis:\/\//)
  })

  it('a consume whose deadline has already passed by Redis\'s clock leaves the ticket as it was', async () => {
    const store = createRedisTicketStore({ url: redis.url })
    const t = ticket()
    await store.save(t, 60_000)
    await expect(store.consume(t.id, { deadlineAt: Date.now() - 1000 })).rejects.toThrow(/after its deadline/)
    expect(await store.client.get(`oss-callback:ticket:${t.id}`)).toBe(JSON.stringify(t))
    expect(await store.consume(t.id, { deadlineAt: Date.now() + 2000 })).toEqual({ status: 'consumed', ticket: t })
    await store.close()
  })

  it('a consume that timed out against a frozen Redis does not take the ticket when Redis resumes', async () => {
    const frozen = await startRedisServer()
    const store = createRedisTicketStore({ url: frozen.url, commandTimeoutMs: 300 })
    try {
      const t = ticket()
      await store.save(t, 60_000)
      process.kill(frozen.pid, 'SIGSTOP')
      try {
        await expect(store.consume(t.id)).rejects.toThrow(/timed out/)
      } finally {
        process.kill(frozen.pid, 'SIGCONT')
      }
      // The timed-out script reaches Redis first on the same connection, then this one.
      expect(await store.consume(t.id)).toEqual({ status: 'consumed', ticket: t })
    } finally {
      await store.close()
      await frozen.stop()
    }
  })

  it('a consume while the connection is down fails at once and is not sent when it comes back', async () => {
    const store = createRedisTicketStore({ url: redis.url })
    const admin = new Redis(redis.url)
    clients.push(admin)
    const t = ticket()
    await store.save(t, 60_000)
    const closed = new Promise((resolve) => store.client.once('close', resolve))
    await admin.client('KILL', 'ID', String(await store.client.client('ID')))
    await closed
    const started = Date.now()
    await expect(store.consume(t.id)).rejects.toThrow(/not ready/)
    expect(Date.now() - started).toBeLessThan(100)
    await new Promise((resolve) => store.client.once('ready', resolve))
    // Anything queued would have gone out ahead of this on the new connection.
    await store.client.ping()
    expect(await admin.get(`oss-callback:ticket:${t.id}`)).toBe(JSON.stringify(t))
    await store.close()
  })

  it('fails fast, not forever, when Redis is gone', async () => {
    const dead = await startRedisServer()
    const store = createRedisTicketStore({ url: dead.url, commandTimeoutMs: 500 })
    await store.save(ticket(), 60_000)
    expect(store.isReady?.()).toBe(true)
    await dead.stop()
    const started = Date.now()
    await expect(store.consume('X'.repeat(24))).rejects.toThrow()
    // A generous bound: the point is that it ends well before OSS's 5 s.
    expect(Date.now() - started).toBeLessThan(4000)
    expect(store.isReady?.()).toBe(false)
    await store.close()
  })
})
