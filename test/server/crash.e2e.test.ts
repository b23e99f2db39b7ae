import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { startPostgresServer, type PostgresServer } from '../helpers/postgres-server.js'
import { runCli, type CliProcess } from '../helpers/process.js'

// Crash tests: real receivers (node dist/cli.js serve) killed with SIGKILL under load while the app fails half
// the time. Every callback answered 200 must reach the app; a deduplicating app sees each webhook-id once.

const SECRET = `whsec_${randomBytes(32).toString('base64')}`
const ROUNDS = 10

let keys: KeyServer
let app: Server
let appUrl: string
/** webhook-id → deliveries the app accepted (a deduplicating app counts the first only, and answers every one). */
const accepted = new Map<string, number>()
/** Answers the load got, by status (and error body), for the failure message. */
const statuses = new Map<string, number>()

beforeAll(async () => {
  keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: testKeyPair(512).publicPem } })
  app = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const id = String(req.headers['webhook-id'])
      if (!accepted.has(id) && Math.random() < 0.5) { res.writeHead(500).end(); return }
      accepted.set(id, (accepted.get(id) ?? 0) + 1)
      const body = JSON.stringify({ Status: 'OK', id })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
    })
  })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}/hook`
})
afterAll(async () => {
  app.closeAllConnections()
  await new Promise((resolve) => app.close(resolve))
  await keys.close()
})

interface Receiver { proc: CliProcess, base: string }

async function startReceiver (databaseUrl: string): Promise<Receiver> {
  const proc = runCli(['serve'], {
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    OSS_CALLBACK_KEY_ORIGINS: keys.origin,
    OSS_CALLBACK_FORWARD_URL: appUrl,
    OSS_CALLBACK_FORWARD_SECRET: SECRET,
    OSS_CALLBACK_FORWARD_TIMEOUT_MS: '1000',
    OSS_CALLBACK_DEADLINE_MS: '2000',
    OSS_CALLBACK_DATABASE_URL: databaseUrl,
    OSS_CALLBACK_ON_UPSTREAM_FAILURE: 'accept',
    OSS_CALLBACK_RETRY_SCHEDULE: '1s',
    OSS_CALLBACK_RETRY_FOR: '1h'
  })
  const m = await proc.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 20_000)
  return { proc, base: m[1] as string }
}

/** Sends unique callbacks to the live receivers until stopped; records the event id of every 200. */
function load (receivers: () => Receiver[], answered: Set<string>, connections = 6): { stop: () => Promise<void> } {
  let stopped = false
  let n = 0
  const privateKey = testKeyPair(512).privateKey
  const worker = async (): Promise<void> => {
    while (!stopped) {
      const live = receivers()
      const target = live[n % live.length]
      const i = n++
      if (target === undefined) { await new Promise((resolve) => setTimeout(resolve, 20)); continue }
      const cb = signedCallback({ url: '/oss/callback', body: `bucket=photos&object=crash%2F${i}.jpg&size=${i}`, keyUrl: keys.url('/k.pem'), privateKey })
      try {
        const res = await fetch(target.base + cb.url, { method: 'POST', headers: { ...cb.headers, 'x-oss-request-id': `REQ-${i}-${randomBytes(4).toString('hex')}` }, body: cb.body, signal: AbortSignal.timeout(5000) })
        const text = await res.text()
        statuses.set(`${res.status} ${res.status === 200 ? '' : text.slice(0, 120)}`, (statuses.get(`${res.status} ${res.status === 200 ? '' : text.slice(0, 120)}`) ?? 0) + 1)
        if (res.status === 200) {
          const json = JSON.parse(text) as { id?: string, eventId?: string }
          answered.add(json.id ?? json.eventId ?? `unparsed:${text}`)
        }
      } catch { /* a killed receiver: no answer, no promise */ }
    }
  }
  const running = Array.from({ length: connections }, worker)
  return { stop: async () => { stopped = true; await Promise.all(running) } }
}

async function untilDelivered (answered: Set<string>, timeoutMs: number): Promise<string[]> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const missing = [...answered].filter((id) => !accepted.has(id))
    if (missing.length === 0 || Date.now() > end) return missing
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

async function crashRounds (databaseUrl: string, receiverCount: number): Promise<void> {
  accepted.clear()
  const answered = new Set<string>()
  const live: Receiver[] = []
  for (let i = 0; i < receiverCount; i++) live.push(await startReceiver(databaseUrl))
  const traffic = load(() => live, answered)
  try {
    for (let round = 0; round < ROUNDS; round++) {
      await new Promise((resolve) => setTimeout(resolve, 400 + Math.random() * 1200))
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0] as Receiver
      victim.proc.kill('SIGKILL')
      expect(await victim.proc.exited).toBe('SIGKILL')
      live.push(await startReceiver(databaseUrl))
    }
  } finally {
    await traffic.stop()
  }
  try {
    expect(answered.size, JSON.stringify([...statuses]) + live.map((r) => r.proc.stdout().slice(-2000)).join('\n')).toBeGreaterThan(ROUNDS)
    expect([...answered].filter((id) => id.startsWith('unparsed:'))).toEqual([])
    // Events leased by a killed receiver wait for their lease (30 s) to end before another retries them.
    const missing = await untilDelivered(answered, 45_000)
    expect(missing).toEqual([])
    // The app never hears of an event that does not exist, and a deduplicating app counts each once.
    for (const id of accepted.keys()) expect(id).toMatch(/^evt_[0-9a-f]{32}$/)
  } finally {
    for (const r of live) r.proc.kill('SIGTERM')
    await Promise.all(live.map((r) => r.proc.exited))
  }
}

describe('crash test: kill -9 under load, the app failing half the time', () => {
  let dir: string
  let pg: PostgresServer | undefined
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'oss-cb-crash-')) })
  afterAll(async () => {
    await pg?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('SQLite, one receiver killed and restarted 10 times: every callback answered 200 is delivered', async () => {
    await crashRounds(`sqlite:${join(dir, 'events.sqlite')}`, 1)
  }, 120_000)

  it('PostgreSQL, two receivers on one log, one of them killed 10 times: every callback answered 200 is delivered', async () => {
    pg = await startPostgresServer()
    await crashRounds(await pg.createDatabase(), 2)
  }, 150_000)
})
