import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { createMemoryTicketStore } from '../../src/tickets/store.js'
import { captureLogger } from '../helpers/log-capture.js'

let app: FastifyInstance | undefined
afterEach(async () => { await app?.close(); app = undefined })

const FORWARD_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
const TICKET_TOKEN = 'ticket-token-0123456789-secret'
const ACCESS_KEY_SECRET = 'access-key-secret-value-42'
const REDIS_PASSWORD = 'redis-passw0rd-value'
const QUERY_TOKEN = 'query-token-value-99'

const everything = {
  OSS_CALLBACK_PATH: '/cb',
  OSS_CALLBACK_PUBLIC_PATH: '/api/cb',
  OSS_CALLBACK_KEY_ORIGINS: 'https://gosspublic.alicdn.com,http://gosspublic.alicdn.com,http://127.0.0.1:8090',
  OSS_CALLBACK_BUCKETS: 'mine,mine-too',
  OSS_CALLBACK_FORWARD_URL: `http://127.0.0.1:9/hooks/oss?token=${QUERY_TOKEN}`,
  OSS_CALLBACK_DATABASE_URL: 'none',
  OSS_CALLBACK_FORWARD_SECRET: FORWARD_SECRET,
  OSS_CALLBACK_TICKET_TOKEN: TICKET_TOKEN,
  OSS_ACCESS_KEY_ID: 'access-key-id',
  OSS_ACCESS_KEY_SECRET: ACCESS_KEY_SECRET,
  OSS_BUCKET: 'mine',
  OSS_ENDPOINT: 'https://oss-cn-hangzhou.aliyuncs.com',
  OSS_REGION: 'cn-hangzhou',
  OSS_CALLBACK_PUBLIC_URL: 'https://app.example.com/api/cb',
  OSS_CALLBACK_REDIS_URL: `redis://:${REDIS_PASSWORD}@127.0.0.1:1/0`
}

describe('the start-up log', () => {
  it('one info line names what the receiver accepts, and no secret, token or query string', async () => {
    const log = captureLogger('trace')
    // The injected store keeps the test off Redis; the configured URL still says Redis is on.
    app = await buildApp(loadConfig(everything), { logger: log.logger, ticketStore: createMemoryTicketStore() })
    await app.ready()
    const settings = log.lines().filter((l) => l.msg === 'receiver settings')
    expect(settings).toHaveLength(1)
    expect(settings[0]).toMatchObject({
      level: 30,
      callbackPath: '/cb',
      publicPath: '/api/cb',
      keyOrigins: ['https://gosspublic.alicdn.com', 'http://gosspublic.alicdn.com', 'http://127.0.0.1:8090'],
      pinnedKeyUrls: ['https://gosspublic.alicdn.com/callback_pub_key_v1.pem', 'http://gosspublic.alicdn.com/callback_pub_key_v1.pem'],
      buckets: ['mine', 'mine-too'],
      forwardTo: 'http://127.0.0.1:9/hooks/oss',
      tickets: 'on',
      redis: 'on'
    })
    const text = log.text()
    for (const secret of [FORWARD_SECRET, FORWARD_SECRET.slice(6, 20), TICKET_TOKEN, ACCESS_KEY_SECRET, REDIS_PASSWORD, QUERY_TOKEN, '?token']) {
      expect(text).not.toContain(secret)
    }
    expect(log.lines().filter((l) => l.level === 40)).toEqual([])
  })

  it('with the defaults: any bucket, nothing forwarded, tickets and Redis off, and one warning that any bucket is accepted', async () => {
    const log = captureLogger('info')
    app = await buildApp(loadConfig({}), { logger: log.logger })
    await app.ready()
    const settings = log.lines().filter((l) => l.msg === 'receiver settings')
    expect(settings).toHaveLength(1)
    expect(settings[0]).toMatchObject({
      callbackPath: '/oss/callback',
      publicPath: null,
      keyOrigins: ['https://gosspublic.alicdn.com', 'http://gosspublic.alicdn.com'],
      buckets: 'any',
      forwardTo: null,
      tickets: 'off',
      redis: 'off'
    })
    const warnings = log.lines().filter((l) => l.level === 40)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]?.msg).toMatch(/any bucket.*OSS_CALLBACK_BUCKETS/)
  })

  it.each([
    ['a bucket list', { OSS_CALLBACK_BUCKETS: 'mine' }, 0],
    ['tickets', { ...everything, OSS_CALLBACK_BUCKETS: '', OSS_CALLBACK_REDIS_URL: '' }, 0],
    ['tickets that let callbacks without one through', { ...everything, OSS_CALLBACK_BUCKETS: '', OSS_CALLBACK_REDIS_URL: '', OSS_CALLBACK_ALLOW_WITHOUT_TICKET: 'true' }, 1]
  ])('with %s: %i warnings about buckets', async (_name, env, count) => {
    const log = captureLogger('info')
    app = await buildApp(loadConfig(env), { logger: log.logger })
    await app.ready()
    expect(log.lines().filter((l) => l.level === 40 && String(l.msg).includes('any bucket'))).toHaveLength(count)
  })
})
