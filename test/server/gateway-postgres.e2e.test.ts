import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { startPostgresServer, type PostgresServer } from '../helpers/postgres-server.js'
import { runCli } from '../helpers/process.js'
import { answerJson, startUpstream, type Upstream } from '../helpers/upstream.js'

const SECRET = `whsec_${randomBytes(32).toString('base64')}`

let keys: KeyServer
let upstream: Upstream
let pg: PostgresServer

beforeAll(async () => {
  keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: testKeyPair(512).publicPem } })
  upstream = await startUpstream(answerJson('{"ok":1}'))
  pg = await startPostgresServer()
}, 60_000)
afterAll(async () => {
  await pg?.stop()
  await upstream?.close()
  await keys?.close()
})

function env (databaseUrl: string): Record<string, string> {
  return {
    LOG_LEVEL: 'silent',
    OSS_CALLBACK_KEY_ORIGINS: keys.origin,
    OSS_CALLBACK_FORWARD_URL: upstream.url('/hook'),
    OSS_CALLBACK_FORWARD_SECRET: SECRET,
    OSS_CALLBACK_FORWARD_TIMEOUT_MS: '500',
    OSS_CALLBACK_DEADLINE_MS: '1500',
    OSS_CALLBACK_DATABASE_URL: databaseUrl
  }
}

async function send (base: string, requestId: string): Promise<{ status: number, code?: string }> {
  const cb = signedCallback({ url: '/oss/callback', body: `bucket=photos&object=${requestId}.jpg`, keyUrl: keys.url('/k.pem'), privateKey: testKeyPair(512).privateKey })
  const res = await fetch(base + cb.url, { method: 'POST', headers: { ...cb.headers, 'x-oss-request-id': requestId }, body: cb.body })
  const json = await res.json() as { code?: string }
  return { status: res.status, ...(json.code === undefined ? {} : { code: json.code }) }
}

describe('durable gateway on PostgreSQL', () => {
  it('PostgreSQL down at start: serve exits 1 with one line', async () => {
    const url = await pg.createDatabase()
    const closed = url.replace(/:(\d+)\//, ':9/')
    const proc = runCli(['serve'], { HOST: '127.0.0.1', PORT: '0', ...env(closed) })
    expect(await proc.exited).toBe(1)
    expect(proc.stderr()).toMatch(/^oss-callback: .*\(OSS_CB_ERR_STORE_UNUSABLE\)\n$/)
  }, 30_000)

  it('PostgreSQL down while running: callbacks get 503 STORE_FAILED and /readyz 503; both recover when it returns, the event delivered once', async () => {
    let app: FastifyInstance | undefined
    try {
      app = await buildApp(loadConfig(env(await pg.createDatabase())), { storeProbeTimeoutMs: 1000 })
      await app.listen({ host: '127.0.0.1', port: 0 })
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
      expect(await send(base, 'BEFORE')).toEqual({ status: 200 })
      await pg.pause()
      expect(await send(base, 'DURING')).toEqual({ status: 503, code: 'OSS_CB_ERR_STORE_FAILED' })
      expect((await fetch(`${base}/readyz`)).status).toBe(503)
      const delivered = upstream.received.length
      await pg.resume()
      let ready = 0
      for (let i = 0; i < 50 && ready !== 200; i++) {
        ready = (await fetch(`${base}/readyz`)).status
        if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 200))
      }
      expect(ready).toBe(200)
      expect(await send(base, 'DURING')).toEqual({ status: 200 })
      expect(upstream.received.length).toBe(delivered + 1)
    } finally {
      await app?.close()
    }
  }, 60_000)
})
