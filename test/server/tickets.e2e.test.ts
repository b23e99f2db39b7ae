import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import type { IssuedTicket } from '../../src/tickets/issuer.js'
import { useTestKeyServer } from '../helpers/key-server.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { callbackForTicket, TICKET_SERVER_ENV, TICKET_TOKEN } from '../helpers/tickets.js'

const keys = useTestKeyServer()

function envWithoutToken (): NodeJS.ProcessEnv {
  const e = env()
  delete e.OSS_CALLBACK_TICKET_TOKEN
  return e
}

function env (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    OSS_CALLBACK_KEY_ORIGINS: keys.origin(),
    LOG_LEVEL: 'silent',
    ...TICKET_SERVER_ENV,
    ...extra
  }
}

async function issue (app: FastifyInstance, body: object = {}): Promise<IssuedTicket> {
  const res = await app.inject({ method: 'POST', url: '/oss/upload-tickets', headers: { authorization: `Bearer ${TICKET_TOKEN}` }, payload: body })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}

describe('standalone server configuration for tickets', () => {
  it('keeps tickets off without a token, whatever else is set', () => {
    expect(loadConfig(envWithoutToken()).tickets).toBeUndefined()
  })

  it('reads every ticket variable with its default', () => {
    expect(loadConfig(env()).tickets).toEqual({
      token: TICKET_TOKEN,
      path: '/oss/upload-tickets',
      accessKeyId: 'ak',
      accessKeySecret: 'sk',
      bucket: 'demo-bucket',
      endpoint: 'http://127.0.0.1:8090',
      region: 'cn-hangzhou',
      callbackUrl: 'http://127.0.0.1:8080/oss/callback',
      uploadPrefix: 'uploads/',
      expirySeconds: 600,
      callbackGraceSeconds: 3600,
      maxSizeBytes: 104857600,
      contentTypes: undefined,
      signatureVersion: 'v4',
      allowCallbacksWithoutTicket: false,
      redisUrl: undefined
    })
    expect(loadConfig(env({
      OSS_CALLBACK_TICKET_CONTENT_TYPES: 'image/png, image/jpeg',
      OSS_CALLBACK_ALLOW_WITHOUT_TICKET: 'true',
      OSS_CALLBACK_TICKET_SIGNATURE_VERSION: 'v1',
      OSS_CALLBACK_REDIS_URL: 'redis://127.0.0.1:6379/2',
      OSS_CALLBACK_TICKET_MAX_SIZE_BYTES: '1024'
    })).tickets).toMatchObject({
      contentTypes: ['image/png', 'image/jpeg'], allowCallbacksWithoutTicket: true, signatureVersion: 'v1',
      redisUrl: 'redis://127.0.0.1:6379/2', maxSizeBytes: 1024
    })
  })

  it('refuses a bad or incomplete ticket configuration at start with one clear message', () => {
    const cases: Array<[Record<string, string | undefined>, RegExp]> = [
      [{ OSS_BUCKET: undefined, OSS_REGION: undefined }, /tickets are on and need OSS_BUCKET, OSS_REGION$/],
      [{ OSS_CALLBACK_TICKET_TOKEN: 'short' }, /^Invalid option: OSS_CALLBACK_TICKET_TOKEN must be at least 16 characters without white space, got a value of 5 characters$/],
      [{ OSS_CALLBACK_TICKET_TOKEN: 'has a space in it ok' }, /OSS_CALLBACK_TICKET_TOKEN must be at least 16 .*, got a value of 20 characters$/],
      [{ OSS_CALLBACK_REDIS_URL: 'http://user:pass@redis' }, /^Invalid option: OSS_CALLBACK_REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL, got a value of 22 characters$/],
      [{ OSS_ENDPOINT: 'ftp://oss.example.com' }, /^Invalid option: OSS_ENDPOINT: endpoint must be/],
      [{ OSS_CALLBACK_UPLOAD_PREFIX: '../' }, /^Invalid option: OSS_CALLBACK_UPLOAD_PREFIX: /],
      [{ OSS_CALLBACK_TICKET_CONTENT_TYPES: 'png' }, /^Invalid option: OSS_CALLBACK_TICKET_CONTENT_TYPES: /],
      [{ OSS_CALLBACK_PUBLIC_URL: 'http://bad port:99999/' }, /OSS_CALLBACK_PUBLIC_URL/],
      [{ OSS_CALLBACK_TICKET_EXPIRY_SECONDS: '10m' }, /OSS_CALLBACK_TICKET_EXPIRY_SECONDS/],
      [{ OSS_CALLBACK_TICKET_MAX_SIZE_BYTES: '6000000000' }, /OSS_CALLBACK_TICKET_MAX_SIZE_BYTES/],
      [{ OSS_CALLBACK_TICKET_SIGNATURE_VERSION: 'v2' }, /OSS_CALLBACK_TICKET_SIGNATURE_VERSION/],
      [{ OSS_CALLBACK_ALLOW_WITHOUT_TICKET: 'yes' }, /OSS_CALLBACK_ALLOW_WITHOUT_TICKET/],
      [{ OSS_CALLBACK_REDIS_URL: 'localhost:6379' }, /OSS_CALLBACK_REDIS_URL/],
      [{ OSS_BUCKET: 'Bad_Bucket' }, /OSS_BUCKET/],
      [{ OSS_CALLBACK_BUCKETS: 'other-bucket' }, /^Invalid option: OSS_CALLBACK_BUCKETS does not name OSS_BUCKET \(demo-bucket\), where tickets upload to$/]
    ]
    for (const [patch, message] of cases) {
      const e = env()
      for (const [k, v] of Object.entries(patch)) {
        if (v === undefined) delete e[k]
        else e[k] = v
      }
      expect(() => loadConfig(e), JSON.stringify(patch)).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_INVALID_OPTION', message: expect.stringMatching(message) }))
    }
  })
})

describe('standalone server with tickets (bearer token)', () => {
  it('has no ticket endpoint and needs no ticket when no token is set', async () => {
    const app = await buildApp(loadConfig(envWithoutToken()))
    const res = await app.inject({ method: 'POST', url: '/oss/upload-tickets', headers: { authorization: `Bearer ${TICKET_TOKEN}` }, payload: {} })
    expect([res.statusCode, res.json()]).toEqual([404, { statusCode: 404, code: 'OSS_CB_ERR_NOT_FOUND', error: 'Not Found', message: 'Not found' }])
    // A callback with no ticket is just a verified callback.
    const withTickets = await buildApp(loadConfig(env()))
    const cb = callbackForTicket(await issue(withTickets), keys.url(), { ticketId: null })
    expect((await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })).statusCode).toBe(200)
    expect((await withTickets.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })).json())
      .toMatchObject({ statusCode: 403, code: 'OSS_CB_ERR_TICKET_MISSING' })
    await app.close()
    await withTickets.close()
  })

  it('asks for the bearer token with 401 and WWW-Authenticate, compared exactly', async () => {
    const app = await buildApp(loadConfig(env()))
    const expected = { statusCode: 401, code: 'OSS_CB_ERR_TICKET_AUTH_REQUIRED', error: 'Unauthorized', message: 'A valid bearer token is required for upload tickets' }
    for (const authorization of [undefined, '', `Basic ${TICKET_TOKEN}`, `Bearer ${TICKET_TOKEN}x`, `Bearer ${TICKET_TOKEN.slice(0, -1)}`, 'Bearer']) {
      const headers = authorization === undefined ? {} : { authorization }
      const res = await app.inject({ method: 'POST', url: '/oss/upload-tickets', headers, payload: {} })
      expect([res.statusCode, res.json()], String(authorization)).toEqual([401, expected])
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.body).not.toContain(TICKET_TOKEN.slice(0, 8))
    }
    await app.close()
  })

  it('issues path-style upload URLs for a local endpoint and records the subject the backend names', async () => {
    let seenSubject: string | undefined
    const app = await buildApp(loadConfig(env()), {
      handler: (cb, ctx) => { seenSubject = ctx.ticket?.subject; return { Status: 'OK', key: cb.system.object } }
    })
    const issued = await issue(app, { subject: 'user-7', filename: 'x.txt' })
    expect(issued.uploadUrl).toBe('http://127.0.0.1:8090/demo-bucket')
    const cb = callbackForTicket(issued, keys.url())
    const res = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect([res.statusCode, res.json()]).toEqual([200, { Status: 'OK', key: issued.key }])
    expect(seenSubject).toBe('user-7')
    const bad = await app.inject({ method: 'POST', url: '/oss/upload-tickets', headers: { authorization: `Bearer ${TICKET_TOKEN}` }, payload: { subject: 7 } })
    expect(bad.json()).toMatchObject({ statusCode: 400, code: 'OSS_CB_ERR_TICKET_REQUEST_INVALID' })
    await app.close()
  })
})

describe('two receiver instances sharing one Redis', () => {
  let redis: RedisServer
  const apps: FastifyInstance[] = []
  beforeAll(async () => { redis = await startRedisServer() })
  afterAll(async () => {
    for (const app of apps) await app.close()
    await redis?.stop()
  })

  it('a ticket issued by one is consumed by the other, and the same callback sent to both at once gets exactly one 200', async () => {
    const config = loadConfig(env({ OSS_CALLBACK_REDIS_URL: redis.url }))
    const origins: string[] = []
    for (let i = 0; i < 2; i++) {
      const app = await buildApp(config)
      apps.push(app)
      origins.push(await app.listen({ host: '127.0.0.1', port: 0 }))
    }
    const [a, b] = apps as [FastifyInstance, FastifyInstance]
    // Ready once the Redis connection is up (bounded wait).
    let ready: unknown
    for (let i = 0; i < 50; i++) {
      ready = await (await fetch(`${origins[1]}/readyz`)).json()
      if ((ready as { status?: string }).status === 'ready') break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(ready).toMatchObject({ status: 'ready' })

    const crossed = callbackForTicket(await issue(a), keys.url())
    const viaB = await b.inject({ method: 'POST', url: crossed.url, headers: crossed.headers, payload: crossed.body })
    expect(viaB.statusCode).toBe(200)
    expect((await a.inject({ method: 'POST', url: crossed.url, headers: crossed.headers, payload: crossed.body })).json())
      .toMatchObject({ statusCode: 409, code: 'OSS_CB_ERR_TICKET_USED' })

    for (let round = 0; round < 10; round++) {
      const cb = callbackForTicket(await issue(round % 2 === 0 ? a : b), keys.url())
      const replies = await Promise.all(origins.map(async (origin) => {
        const res = await fetch(origin + cb.url, { method: 'POST', headers: cb.headers, body: cb.body })
        return { status: res.status, body: await res.json() as { code?: string } }
      }))
      const statuses = replies.map((r) => r.status).sort()
      expect(statuses, `round ${round}`).toEqual([200, 409])
      expect(replies.find((r) => r.status === 409)?.body.code).toBe('OSS_CB_ERR_TICKET_USED')
    }
  })

  it('a callback answered 503 while Redis is frozen leaves its ticket usable: the re-upload after Redis resumes gets 200', async () => {
    const frozen = await startRedisServer()
    const app = await buildApp(loadConfig(env({ OSS_CALLBACK_REDIS_URL: frozen.url })))
    try {
      await app.ready()
      const cb = callbackForTicket(await issue(app), keys.url())
      process.kill(frozen.pid, 'SIGSTOP')
      let res
      const started = Date.now()
      try {
        res = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
      } finally {
        process.kill(frozen.pid, 'SIGCONT')
      }
      expect([res.statusCode, res.json()]).toMatchObject([503, { code: 'OSS_CB_ERR_TICKET_STORE_FAILED' }])
      // The store gives up after its 2 s command timeout, within OSS's 5 s.
      expect(Date.now() - started).toBeLessThan(4500)
      const again = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
      expect([again.statusCode, again.json()]).toMatchObject([200, { Status: 'OK' }])
      const replay = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
      expect(replay.json()).toMatchObject({ statusCode: 409, code: 'OSS_CB_ERR_TICKET_USED' })
    } finally {
      await app.close()
      await frozen.stop()
    }
  })

  it('readyz turns 503 within a few seconds of Redis freezing, and 200 again once it resumes', async () => {
    const frozen = await startRedisServer()
    const app = await buildApp(loadConfig(env({ OSS_CALLBACK_REDIS_URL: frozen.url })), {
      redisTicketStore: { healthCheckIntervalMs: 100, healthCheckTimeoutMs: 200 }
    })
    async function readyzBecomes (status: number, withinMs: number): Promise<number> {
      const started = Date.now()
      for (;;) {
        const res = await app.inject({ method: 'GET', url: '/readyz' })
        if (res.statusCode === status) return Date.now() - started
        if (Date.now() - started > withinMs) throw new Error(`readyz stayed ${res.statusCode} for ${withinMs} ms`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    try {
      await app.ready()
      await readyzBecomes(200, 3000)
      process.kill(frozen.pid, 'SIGSTOP')
      try {
        expect(await readyzBecomes(503, 3000)).toBeLessThan(3000)
        expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toMatchObject({ code: 'OSS_CB_ERR_NOT_READY' })
      } finally {
        process.kill(frozen.pid, 'SIGCONT')
      }
      expect(await readyzBecomes(200, 3000)).toBeLessThan(3000)
    } finally {
      await app.close()
      await frozen.stop()
    }
  })

  it('answers 503 when Redis is down, and readyz says not ready', async () => {
    const dead = await startRedisServer()
    const app = await buildApp(loadConfig(env({ OSS_CALLBACK_REDIS_URL: dead.url })))
    await app.ready()
    const issued = await issue(app)
    await dead.stop()
    const cb = callbackForTicket(issued, keys.url())
    const res = await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body })
    expect([res.statusCode, res.json()]).toEqual([503, {
      statusCode: 503, code: 'OSS_CB_ERR_TICKET_STORE_FAILED', error: 'Service Unavailable', message: 'The upload ticket store is unavailable'
    }])
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503)
    await app.close()
  })
})
