import { createServer as createNetServer, connect, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_KEY_ORIGINS } from '../../src/protocol/key-url.js'
import { OSS_CALLBACK_PUBLIC_KEY_V1_PEM } from '../../src/keys/pinned.js'
import type { CallbackHandler } from '../../src/receiver/plugin.js'
import { docCallback } from '../helpers/fixtures.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import {
  expectCodedError, expectHealthy, expectNoSecretsInLog, parseRawResponse, pemBodyLines, post, startApp, testConfig,
  type Reply, type RunningApp
} from '../helpers/server.js'

const pair = testKeyPair(512)
const DEADLINE_MS = 4500
// Tests that wait for a deadline configure a short one; the 4.5 s default is asserted in config.test.ts.
const SHORT_DEADLINE_MS = 800

interface Timed { res: Reply, ms: number, endedAt: number }
async function timed (p: () => Promise<Reply>): Promise<Timed> {
  const start = performance.now()
  const res = await p()
  const endedAt = performance.now()
  return { res, ms: endedAt - start, endedAt }
}

function sendDoc (origin: string): Promise<Reply> {
  const { authorization, 'x-oss-pub-key-url': keyUrl, 'content-type': type } = docCallback.headers as Record<string, string>
  return post(origin, `${docCallback.path}${docCallback.query}`, {
    headers: { authorization: authorization as string, 'x-oss-pub-key-url': keyUrl as string, 'content-type': type as string },
    body: docCallback.body
  })
}

function sendSigned (origin: string, keyUrl: string, path = '/index.php', body?: string): Promise<Reply> {
  const cb = signedCallback({ keyUrl, privateKey: pair.privateKey, url: path, body })
  return post(origin, cb.url, { headers: cb.headers, body: cb.body })
}

describe('key host faults, with real sockets', () => {
  let faults: KeyServer
  let cached: KeyServer
  let down: string
  let reset: NetServer
  let resetOrigin: string
  let running: RunningApp

  beforeAll(async () => {
    faults = await startKeyServer({
      '/refusing.pem': { kind: 'status', status: 403 },
      '/failing.pem': { kind: 'status', status: 500 },
      '/hang.pem': { kind: 'hang' },
      '/dribble.pem': { kind: 'dribble', intervalMs: 1000 },
      '/huge.pem': { kind: 'bytes', bytes: 5 * 1024 * 1024 },
      '/redirect.pem': { kind: 'redirect', location: '/k.pem' },
      '/not-pem.pem': { kind: 'text', body: 'this is not a key\n' },
      '/truncated.pem': { kind: 'text', body: pair.publicPem.slice(0, 60) },
      '/k.pem': { kind: 'pem', pem: pair.publicPem }
    })
    cached = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } })
    const closed = await startKeyServer()
    down = closed.origin
    await closed.close()
    reset = createNetServer((s: Socket) => s.destroy())
    await new Promise<void>((resolve) => reset.listen(0, '127.0.0.1', resolve))
    resetOrigin = `http://127.0.0.1:${(reset.address() as AddressInfo).port}`
    running = await startApp(testConfig({ path: '/index.php', keyOrigins: [...DEFAULT_KEY_ORIGINS, faults.origin, cached.origin, down, resetOrigin] }))
  })

  afterAll(async () => {
    await running.close()
    await faults.close()
    await cached.close()
    await new Promise<void>((resolve) => reset.close(() => resolve()))
  })

  it('answers every faulty key host with a coded error before the deadline, while pinned and cached keys keep verifying', async () => {
    expect((await sendSigned(running.origin, `${cached.origin}/k.pem`)).status).toBe(200)
    expect(cached.total()).toBe(1)

    const cases: Array<[string, string, string]> = [
      ['host down (closed port)', `${down}/k.pem`, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
      ['connection reset on accept', `${resetOrigin}/k.pem`, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
      ['refusing with 403', `${faults.origin}/refusing.pem`, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
      ['failing with 500', `${faults.origin}/failing.pem`, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
      ['never answering', `${faults.origin}/hang.pem`, 'OSS_CB_ERR_KEY_FETCH_TIMEOUT'],
      ['dribbling a byte a second', `${faults.origin}/dribble.pem`, 'OSS_CB_ERR_KEY_FETCH_TIMEOUT'],
      ['sending 5 MB', `${faults.origin}/huge.pem`, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
      ['redirecting', `${faults.origin}/redirect.pem`, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
      ['not a PEM', `${faults.origin}/not-pem.pem`, 'OSS_CB_ERR_KEY_INVALID'],
      ['a truncated PEM', `${faults.origin}/truncated.pem`, 'OSS_CB_ERR_KEY_INVALID']
    ]
    const faulty = cases.map(([, url]) => timed(() => sendSigned(running.origin, url)))

    // Meanwhile, while the slow fetches are still running:
    await new Promise((resolve) => setTimeout(resolve, 200))
    const healthy = await Promise.all([
      ...Array.from({ length: 5 }, () => timed(() => sendDoc(running.origin))),
      ...Array.from({ length: 5 }, () => timed(() => sendSigned(running.origin, `${cached.origin}/k.pem`)))
    ])
    const results = await Promise.all(faulty)

    results.forEach((r, i) => {
      const [label, , code] = cases[i] as [string, string, string]
      expect.soft(r.res.status, label).not.toBe(200)
      expectCodedError(r.res, code)
      expect.soft(r.ms, label).toBeLessThan(DEADLINE_MS)
    })
    const slowestFault = Math.max(...results.map((r) => r.endedAt))
    for (const h of healthy) {
      expect(h.res.status).toBe(200)
      expect(JSON.parse(h.res.body)).toMatchObject({ Status: 'OK' })
      expect(h.endedAt).toBeLessThan(slowestFault)
    }
    expect(JSON.parse((healthy[0] as Timed).res.body)).toEqual({ Status: 'OK', bucket: 'yonghu-test', imageInfo: {} })
    expect(cached.total()).toBe(1)
    expect(faults.hits.get('/k.pem') ?? 0).toBe(0)
    await expectHealthy(running.origin)
    expectNoSecretsInLog(running.log, [...pemBodyLines(pair.publicPem), ...pemBodyLines(OSS_CALLBACK_PUBLIC_KEY_V1_PEM)])
  }, 20_000)
})

describe('a key fetch timeout longer than the deadline', () => {
  it('is cut to the time left: a hanging key host is answered 504 by the deadline, under OSS\'s 5 s', async () => {
    const hang = await startKeyServer({ '/hang.pem': { kind: 'hang' } })
    const running = await startApp(testConfig({ keyOrigins: [hang.origin], keyFetchTimeoutMs: 30_000, deadlineMs: SHORT_DEADLINE_MS }))
    try {
      const r = await timed(() => sendSigned(running.origin, `${hang.origin}/hang.pem`, '/oss/callback'))
      expectCodedError(r.res, 'OSS_CB_ERR_KEY_FETCH_TIMEOUT')
      expect(r.ms).toBeGreaterThanOrEqual(SHORT_DEADLINE_MS - 100)
      expect(r.ms).toBeLessThan(5000)
    } finally {
      await running.close()
      await hang.close()
    }
  }, 15_000)
})

describe('handler faults', () => {
  let keys: KeyServer
  let running: RunningApp
  let aborted = 0
  const handler: CallbackHandler = async (callback, { signal }) => {
    switch (callback.vars['x:mode']) {
      case 'throw': throw new Error('database is down: password=hunter2')
      case 'reject': return Promise.reject(new TypeError('nope'))
      case 'hang':
        signal.addEventListener('abort', () => { aborted++ })
        return new Promise(() => {})
      case 'bigint': return { n: 1n }
      case 'huge': return { s: 'x'.repeat(1_100_000) }
      default: return { Status: 'OK', mode: callback.vars['x:mode'] ?? null }
    }
  }

  beforeAll(async () => {
    keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } })
    running = await startApp(testConfig({ keyOrigins: [keys.origin], deadlineMs: SHORT_DEADLINE_MS }), { handler })
  })
  afterAll(async () => {
    await running.close()
    await keys.close()
  })

  const send = (mode: string): Promise<Timed> => timed(() => sendSigned(running.origin, `${keys.origin}/k.pem`, '/oss/callback', `bucket=b&x%3Amode=${mode}`))

  it('a handler that throws or rejects: 500 OSS_CB_ERR_HANDLER_FAILED, its message not sent', async () => {
    for (const mode of ['throw', 'reject']) {
      const r = await send(mode)
      expectCodedError(r.res, 'OSS_CB_ERR_HANDLER_FAILED')
      expect(r.res.body).not.toContain('hunter2')
    }
  })

  it('a reply that is not JSON or is over 1 MB: 500 OSS_CB_ERR_REPLY_INVALID', async () => {
    expectCodedError((await send('bigint')).res, 'OSS_CB_ERR_REPLY_INVALID')
    expectCodedError((await send('huge')).res, 'OSS_CB_ERR_REPLY_INVALID')
  })

  it('a handler that hangs: 504 OSS_CB_ERR_DEADLINE_EXCEEDED at the deadline, its signal aborted, others still served', async () => {
    const hanging = send('hang')
    await new Promise((resolve) => setTimeout(resolve, 100))
    const ok = await send('fine')
    expect(ok.res.status).toBe(200)
    expect(JSON.parse(ok.res.body)).toEqual({ Status: 'OK', mode: 'fine' })
    const r = await hanging
    expectCodedError(r.res, 'OSS_CB_ERR_DEADLINE_EXCEEDED')
    expect(r.ms).toBeGreaterThanOrEqual(SHORT_DEADLINE_MS - 100)
    expect(r.ms).toBeLessThan(5000)
    expect(ok.endedAt).toBeLessThan(r.endedAt)
    expect(aborted).toBe(1)
    await expectHealthy(running.origin)
  }, 15_000)
})

describe('slow clients', () => {
  let keys: KeyServer
  let running: RunningApp
  const SHORT = { headersTimeoutMs: 1500, requestTimeoutMs: 2000, connectionsCheckingIntervalMs: 100 }

  beforeAll(async () => {
    keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } })
    running = await startApp(testConfig({ keyOrigins: [keys.origin] }), { timeouts: SHORT })
  })
  afterAll(async () => {
    await running.close()
    await keys.close()
  })

  /** Opens a socket, writes `first`, then `drip()` every 200 ms until the server closes it. Resolves with what came back and when. */
  function slowClient (first: string, drip: () => string): Promise<{ raw: string, ms: number }> {
    return new Promise((resolve) => {
      const start = performance.now()
      const socket = connect(running.port, '127.0.0.1')
      const chunks: Buffer[] = []
      let timer: NodeJS.Timeout | undefined
      socket.on('connect', () => {
        socket.write(first)
        timer = setInterval(() => { if (socket.writable) socket.write(drip()) }, 200)
      })
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('error', () => {})
      socket.on('close', () => {
        clearInterval(timer)
        resolve({ raw: Buffer.concat(chunks).toString('latin1'), ms: performance.now() - start })
      })
    })
  }

  it('slowloris (headers that never end) is cut off with 408 OSS_CB_ERR_REQUEST_TIMEOUT while others are served', async () => {
    let n = 0
    const loris = Array.from({ length: 20 }, () => slowClient('POST /oss/callback HTTP/1.1\r\nHost: x\r\n', () => `x-slow-${n++}: 1\r\n`))
    await new Promise((resolve) => setTimeout(resolve, 150))
    const served = await Promise.all(Array.from({ length: 10 }, () => timed(() => sendSigned(running.origin, `${keys.origin}/k.pem`, '/oss/callback'))))
    for (const s of served) expect(s.res.status).toBe(200)
    const cut = await Promise.all(loris)
    const slowestServed = Math.max(...served.map((s) => s.ms))
    for (const c of cut) {
      expectCodedError(parseRawResponse(c.raw), 'OSS_CB_ERR_REQUEST_TIMEOUT')
      expect(c.ms).toBeGreaterThanOrEqual(SHORT.headersTimeoutMs)
      expect(c.ms).toBeLessThan(5000)
    }
    expect(slowestServed).toBeLessThan(Math.min(...cut.map((c) => c.ms)))
    await expectHealthy(running.origin)
  }, 15_000)

  it('a body that never ends is cut off with 408 OSS_CB_ERR_REQUEST_TIMEOUT while others are served', async () => {
    const cb = signedCallback({ keyUrl: `${keys.origin}/k.pem`, privateKey: pair.privateKey })
    const head = `POST /oss/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: ${cb.headers.authorization}\r\n` +
      `x-oss-pub-key-url: ${cb.headers['x-oss-pub-key-url']}\r\nContent-Length: 1000\r\n\r\nbucket=b`
    const bodies = Array.from({ length: 10 }, () => slowClient(head, () => 'a'))
    await new Promise((resolve) => setTimeout(resolve, 150))
    const served = await Promise.all(Array.from({ length: 10 }, () => timed(() => sendSigned(running.origin, `${keys.origin}/k.pem`, '/oss/callback'))))
    for (const s of served) expect(s.res.status).toBe(200)
    for (const c of await Promise.all(bodies)) {
      expectCodedError(parseRawResponse(c.raw), 'OSS_CB_ERR_REQUEST_TIMEOUT')
      expect(c.ms).toBeGreaterThanOrEqual(SHORT.requestTimeoutMs)
      expect(c.ms).toBeLessThan(5000)
    }
    await expectHealthy(running.origin)
  }, 15_000)

  it('regression: Node checked slow connections only every 30 s, so slowloris outlived headersTimeout; the default check now runs every second', async () => {
    // Only the two timeouts are shortened: the checking interval is the production default.
    const app = await startApp(testConfig({ keyOrigins: [keys.origin] }), { timeouts: { headersTimeoutMs: 300, requestTimeoutMs: 600 } })
    try {
      const start = performance.now()
      const res = await new Promise<string>((resolve) => {
        const socket = connect(app.port, '127.0.0.1', () => socket.write('POST /oss/callback HTTP/1.1\r\nHost: x\r\n'))
        const chunks: Buffer[] = []
        socket.on('data', (c: Buffer) => chunks.push(c))
        socket.on('error', () => {})
        socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
      })
      expectCodedError(parseRawResponse(res), 'OSS_CB_ERR_REQUEST_TIMEOUT')
      expect(performance.now() - start).toBeLessThan(5000)
    } finally {
      await app.close()
    }
  }, 15_000)

  it('rejects timeouts that are not positive whole numbers, or a headers timeout over the request timeout', async () => {
    const { buildApp } = await import('../../src/server/app.js')
    await expect(buildApp(testConfig(), { timeouts: { requestTimeoutMs: 0 } })).rejects.toThrow('timeouts.requestTimeoutMs must be a positive whole number, got 0')
    await expect(buildApp(testConfig(), { timeouts: { headersTimeoutMs: 2000, requestTimeoutMs: 1000 } })).rejects.toThrow('timeouts.headersTimeoutMs must not exceed timeouts.requestTimeoutMs')
  })
})

describe('shutdown', () => {
  it('regression: a request pipelined on a kept-alive connection during shutdown got Fastify\'s uncoded 503; now OSS_CB_ERR_NOT_READY', async () => {
    const keys = await startKeyServer({ '/slow.pem': { kind: 'pem', pem: pair.publicPem, delayMs: 800 } })
    const running = await startApp(testConfig({ keyOrigins: [keys.origin] }))
    const cb = signedCallback({ keyUrl: `${keys.origin}/slow.pem`, privateKey: pair.privateKey })
    const head = (extra: string): string => `POST /oss/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
      `Authorization: ${cb.headers.authorization}\r\nx-oss-pub-key-url: ${cb.headers['x-oss-pub-key-url']}\r\nContent-Length: ${cb.body.length}\r\n${extra}\r\n${cb.body.toString()}`
    const socket = connect(running.port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
    socket.write(head(''))
    await new Promise((resolve) => setTimeout(resolve, 200))
    const closing = running.close()
    await new Promise((resolve) => setTimeout(resolve, 50))
    socket.write(head(''))
    await closing
    await closed
    await keys.close()
    const raw = Buffer.concat(chunks).toString('latin1')
    const second = raw.indexOf('HTTP/1.1', 10)
    const first = parseRawResponse(second === -1 ? raw : raw.slice(0, second))
    expect(first.status).toBe(200)
    expect(second).toBeGreaterThan(0)
    const res = parseRawResponse(raw.slice(second))
    expectCodedError(res, 'OSS_CB_ERR_NOT_READY')
    expect(res.headers.connection).toBe('close')
  }, 15_000)
})
