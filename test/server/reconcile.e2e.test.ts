import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import { aliOssClient } from '../sim/stack.js'

const BUCKET = 'sweptbucket'
let dir: string
let sim: Simulator
let upstream: Server
let app: FastifyInstance | undefined
const received: Array<{ type: string, data: { system: { object?: string } } }> = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oss-cb-reconcile-server-'))
  sim = await startSimulator({ port: 0 })
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString()) as typeof received[number])
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
}, 30_000)

afterAll(async () => {
  await app?.close()
  upstream?.closeAllConnections()
  await new Promise((resolve) => upstream?.close(resolve))
  await sim?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function until (check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function sample (text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

describe('the server with OSS_CALLBACK_RECONCILE_EVERY', () => {
  it('sweeps the bucket on its schedule: an object without a callback reaches the app as oss.object.unconfirmed, and /metrics counts it', async () => {
    const put = await aliOssClient(sim, BUCKET).put('up/no-callback.jpg', Buffer.from('no callback'))
    expect(put.res.status).toBe(200)
    app = await buildApp(loadConfig({
      LOG_LEVEL: 'silent',
      OSS_CALLBACK_FORWARD_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/events`,
      OSS_CALLBACK_FORWARD_SECRET: `whsec_${randomBytes(24).toString('base64')}`,
      OSS_CALLBACK_DATABASE_URL: `sqlite:${join(dir, 'events.sqlite')}`,
      OSS_CALLBACK_RECONCILE_EVERY: '1s',
      // The shortest settle time a duration can say: the second sweep (1 s after the first) is past it.
      OSS_CALLBACK_RECONCILE_SETTLE: '1s',
      OSS_CALLBACK_RECONCILE_PREFIXES: 'up/',
      OSS_BUCKET: BUCKET,
      OSS_ENDPOINT: sim.origin,
      OSS_ACCESS_KEY_ID: sim.credentials.accessKeyId,
      OSS_ACCESS_KEY_SECRET: sim.credentials.accessKeySecret
    }), { delivery: { pollIntervalMs: 50 } })
    await app.ready()

    await until(() => received.length >= 1, 10_000)
    expect(received).toHaveLength(1)
    expect(received[0]).toMatchObject({ type: 'oss.object.unconfirmed', data: { system: { object: 'up/no-callback.jpg' } } })

    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(sample(metrics, 'oss_callback_reconcile_objects_listed_total')).toBeGreaterThanOrEqual(1)
    expect(sample(metrics, 'oss_callback_reconcile_unconfirmed_total')).toBe(1)
    expect(sample(metrics, 'oss_callback_reconcile_sweep_duration_seconds_count')).toBeGreaterThanOrEqual(1)
    expect(sample(metrics, 'oss_callback_reconcile_last_success_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60)
    expect(sample(metrics, 'oss_callback_reconcile_failures_total')).toBe(0)

    // Idempotent across turns: the next sweep finds the object recorded.
    const swept = sample(metrics, 'oss_callback_reconcile_sweep_duration_seconds_count') ?? 0
    let later = metrics
    const end = Date.now() + 10_000
    while ((sample(later, 'oss_callback_reconcile_sweep_duration_seconds_count') ?? 0) <= swept && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      later = (await app.inject({ method: 'GET', url: '/metrics' })).body
    }
    expect(sample(later, 'oss_callback_reconcile_sweep_duration_seconds_count')).toBeGreaterThan(swept)
    expect(sample(later, 'oss_callback_reconcile_unconfirmed_total')).toBe(1)
    expect(received).toHaveLength(1)
  }, 20_000)
})
