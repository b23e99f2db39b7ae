import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDeliveryWorker, type DeliveryWorker } from '../../src/delivery/worker.js'
import { openEventStore } from '../../src/events/open.js'
import { eventId, type EventStore } from '../../src/events/store.js'
import { runReconcileCommand } from '../../src/reconcile/command.js'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { forwardEnvelope } from '../../src/server/forward.js'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import { aliOssClient } from '../sim/stack.js'

const BUCKET = 'gapbucket'
const BODY = 'bucket=${bucket}&object=${object}&etag=${etag}&size=${size}'
let dir: string
let url: string
let sim: Simulator
let store: EventStore
let receiver: FastifyInstance
let app: Server
let worker: DeliveryWorker
const delivered: Array<{ id: string, body: { type: string, data: { system: { object: string, etag: string } } } }> = []

async function listen (server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oss-cb-gap-'))
  url = `sqlite:${join(dir, 'log.sqlite')}`
  store = await openEventStore(url)
  sim = await startSimulator({ port: 0, callbackTimeoutMs: 1000 })
  // The receiver records each verified callback in the log, as the gateway does, and the app has it.
  receiver = await buildApp(loadConfig({ OSS_CALLBACK_KEY_ORIGINS: sim.origin, LOG_LEVEL: 'silent' }), {
    handler: async (callback) => {
      const { event } = await store.append({
        id: eventId({ path: callback.path, query: callback.query, body: callback.raw, requestId: callback.requestId }),
        type: 'oss.callback.verified',
        bucket: callback.system.bucket ?? null,
        objectKey: callback.system.object ?? null,
        etag: callback.system.etag ?? null,
        envelope: JSON.stringify(forwardEnvelope(callback, Date.now())),
        // As the gateway does: not due for the background worker while the callback is being answered.
        firstAttemptAt: Date.now() + 60_000
      })
      await store.finish(event.id, 'delivered', null)
      return { Status: 'OK' }
    }
  })
  await receiver.listen({ port: 0, host: '127.0.0.1' })
  app = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      delivered.push({ id: String(req.headers['webhook-id']), body: JSON.parse(Buffer.concat(chunks).toString()) as typeof delivered[number]['body'] })
      res.writeHead(204).end()
    })
  })
  const appPort = await listen(app)
  worker = createDeliveryWorker({ store, url: `http://127.0.0.1:${appPort}/events`, secret: `whsec_${randomBytes(24).toString('base64')}`, pollIntervalMs: 50 })
  worker.start()
}, 30_000)

afterAll(async () => {
  await worker?.close()
  await store?.close()
  await receiver?.close()
  app?.closeAllConnections()
  await new Promise((resolve) => app?.close(resolve))
  await sim?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function reconcile (): Promise<{ code: number, out: string }> {
  let out = ''
  const code = await runReconcileCommand(['--bucket', BUCKET, '--prefix', 'up/', '--since', '1h', '--endpoint', sim.origin, '--json'], {
    env: { OSS_CALLBACK_DATABASE_URL: url, OSS_ACCESS_KEY_ID: sim.credentials.accessKeyId, OSS_ACCESS_KEY_SECRET: sim.credentials.accessKeySecret },
    stdout: { write: (c: string) => { out += c } },
    stderr: { write: () => {} },
    // Past the settle time of the objects just uploaded.
    deps: { now: () => Date.now() + 5 * 60_000 }
  })
  return { code, out }
}

async function until (check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('the real gap, end to end', () => {
  it('an upload whose callback failed (203) reaches the app once as oss.object.unconfirmed; recorded ones do not; a second run delivers nothing', async () => {
    const client = aliOssClient(sim, BUCKET)
    const live = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/oss/callback`
    const down = createServer()
    const downUrl = `http://127.0.0.1:${await listen(down)}/oss/callback`
    await new Promise((resolve) => down.close(resolve))

    for (const key of ['up/ok-1.jpg', 'up/ok-2.jpg']) {
      const ok = await client.put(key, Buffer.from(key), { callback: { url: live, body: BODY, contentType: 'application/x-www-form-urlencoded' } } as never)
      expect(ok.res.status).toBe(200)
    }
    const failed = await client.put('up/lost.jpg', Buffer.from('lost'), { callback: { url: downUrl, body: BODY, contentType: 'application/x-www-form-urlencoded' } } as never)
      .then(() => { throw new Error('expected 203') }, (err: { status?: number, name?: string }) => err)
    expect(failed.status).toBe(203)
    expect((await store.stats()).counts.delivered).toBe(2)

    const first = await reconcile()
    expect(first.code).toBe(0)
    expect(JSON.parse(first.out)).toMatchObject({ listed: 3, matched: 2, new: 1, skipped: 0 })
    await until(() => delivered.length >= 1)
    const head = await client.head('up/lost.jpg')
    const etag = String((head.res.headers as Record<string, string>).etag).replaceAll('"', '')
    expect(delivered).toHaveLength(1)
    expect(delivered[0]!.body).toMatchObject({ type: 'oss.object.unconfirmed', data: { system: { object: 'up/lost.jpg', etag } } })

    const second = await reconcile()
    expect(JSON.parse(second.out)).toMatchObject({ listed: 3, matched: 3, new: 0 })
    // The worker polls every 50 ms: a second event would have been delivered by now.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(delivered).toHaveLength(1)
    expect((await store.stats()).counts).toMatchObject({ delivered: 3, pending: 0 })
  }, 30_000)
})
