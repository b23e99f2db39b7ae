import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import type { Pool } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_APP_REPLY_BYTES } from '../../src/delivery/classify.js'
import { createPool, createSender, SendFailure, type SendRequest } from '../../src/delivery/send.js'

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer, nthOnSocket: number) => void

interface App { url: URL, connections: () => number, requests: Array<{ headers: IncomingMessage['headers'], body: string }>, close: () => Promise<void> }

const closers: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of closers.splice(0).reverse()) await c() })

/** A real HTTP app on 127.0.0.1; the handler sees how many requests its connection carried so far. */
async function startApp (handler: Handler): Promise<App> {
  const sockets = new Set<Socket>()
  const perSocket = new WeakMap<Socket, number>()
  const requests: App['requests'] = []
  let connections = 0
  const server: Server = createHttpServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const n = (perSocket.get(req.socket) ?? 0) + 1
      perSocket.set(req.socket, n)
      const body = Buffer.concat(chunks)
      requests.push({ headers: req.headers, body: body.toString() })
      handler(req, res, body, n)
    })
  })
  server.on('connection', (s) => { connections++; sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const app: App = {
    url: new URL(`http://127.0.0.1:${port}/hook?x=1`),
    connections: () => connections,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  closers.push(app.close)
  return app
}

function pool (url: URL): Pool {
  const p = createPool(url, 4)
  closers.push(async () => { await p.destroy() })
  return p
}

const request = (url: URL, extra: Partial<SendRequest> = {}): SendRequest => ({
  url, headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1' }, body: '{"n":1}', timeoutMs: 2000, ...extra
})

/** The pool takes a connection back a little after `send` resolves: wait until it has. */
async function idle (p: Pool): Promise<void> {
  while (p.stats.running > 0 || p.stats.free === 0) await new Promise((resolve) => setImmediate(resolve))
}

async function failure (p: Promise<unknown>): Promise<SendFailure> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(SendFailure)
  return err as SendFailure
}

describe('createSender (undici)', () => {
  it('POSTs the body and headers to the path and query, and reads the answer; keep-alive reuses one connection', async () => {
    const app = await startApp((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"Status":"OK"}') })
    const p = pool(app.url)
    const send = createSender(p)
    const first = await send(request(app.url))
    expect(first.status).toBe(200)
    expect(first.body.toString()).toBe('{"Status":"OK"}')
    expect(first.overLimit).toBe(false)
    await idle(p)
    const second = await send(request(app.url, { body: '{"n":2}' }))
    expect(second.status).toBe(200)
    expect(app.connections()).toBe(1)
    expect(app.requests.map((r) => r.body)).toEqual(['{"n":1}', '{"n":2}'])
    expect(app.requests[0]?.headers).toMatchObject({ 'webhook-id': 'msg_1', 'content-type': 'application/json', 'content-length': '7' })
  })

  it('a 204 and a 503 are answers, with their bytes', async () => {
    const app = await startApp((req, res) => {
      if (req.url?.startsWith('/none') === true) res.writeHead(204).end()
      else res.writeHead(503).end('busy')
    })
    const send = createSender(pool(app.url))
    expect(await send(request(new URL('/none', app.url)))).toMatchObject({ status: 204, overLimit: false })
    const busy = await send(request(app.url))
    expect(busy.status).toBe(503)
    expect(busy.body.toString()).toBe('busy')
  })

  it('reads up to 1 MB: exactly 1 MB is an answer, one byte more is overLimit', async () => {
    const app = await startApp((req, res) => {
      const size = req.url?.startsWith('/over') === true ? MAX_APP_REPLY_BYTES + 1 : MAX_APP_REPLY_BYTES
      res.writeHead(200)
      // In pieces, as a streaming app would send it.
      for (let sent = 0; sent < size; sent += 64 * 1024) res.write(Buffer.alloc(Math.min(64 * 1024, size - sent), 0x61))
      res.end()
    })
    const send = createSender(pool(app.url))
    const full = await send(request(new URL('/full', app.url)))
    expect(full).toMatchObject({ status: 200, overLimit: false })
    expect(full.body.length).toBe(MAX_APP_REPLY_BYTES)
    const over = await send(request(new URL('/over', app.url)))
    expect(over).toMatchObject({ status: 200, overLimit: true })
    expect(over.body.length).toBe(0)
  })

  it('times out against an app that never answers', async () => {
    const app = await startApp(() => {})
    const send = createSender(pool(app.url))
    const started = performance.now()
    const err = await failure(send(request(app.url, { timeoutMs: 150 })))
    expect(err.kind).toBe('timeout')
    expect(performance.now() - started).toBeLessThan(1500)
  })

  it('times out when the app sends its headers but never finishes the body', async () => {
    const app = await startApp((_req, res) => { res.writeHead(200, { 'content-length': '100' }); res.write('{') })
    const err = await failure(createSender(pool(app.url))(request(app.url, { timeoutMs: 150 })))
    expect(err.kind).toBe('timeout')
  })

  it('aborts when the signal fires, and does not send at all when it already has', async () => {
    const app = await startApp(() => {})
    const send = createSender(pool(app.url))
    const controller = new AbortController()
    const pending = send(request(app.url, { signal: controller.signal }))
    while (app.requests.length === 0) await new Promise((resolve) => setImmediate(resolve))
    controller.abort()
    expect((await failure(pending)).kind).toBe('aborted')
    const before = app.requests.length
    expect((await failure(send(request(app.url, { signal: AbortSignal.abort() })))).kind).toBe('aborted')
    expect(app.requests.length).toBe(before)
  })

  it('connection refused is unreachable', async () => {
    const probe = createTcpServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const { port } = probe.address() as AddressInfo
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    const url = new URL(`http://127.0.0.1:${port}/hook`)
    const err = await failure(createSender(pool(url))(request(url)))
    expect(err).toMatchObject({ kind: 'unreachable', detail: 'ECONNREFUSED' })
  })

  it('a connection reset on every request is unreachable (after one retry)', async () => {
    const app = await startApp((req) => { req.socket.resetAndDestroy() })
    const err = await failure(createSender(pool(app.url))(request(app.url)))
    expect(err).toMatchObject({ kind: 'unreachable', detail: 'ECONNRESET' })
    expect(app.requests.length).toBe(2)
    const closing = await startApp((req) => { req.socket.destroy() })
    const closed = await failure(createSender(pool(closing.url))(request(closing.url)))
    expect(closed).toMatchObject({ kind: 'unreachable', detail: 'ECONNRESET' })
  })

  it('a reply cut off mid-body is unreachable, not retried', async () => {
    const app = await startApp((req, res) => { res.writeHead(200, { 'content-length': '100' }); res.write('{', () => req.socket.destroy()) })
    const err = await failure(createSender(pool(app.url))(request(app.url)))
    expect(err).toMatchObject({ kind: 'unreachable', detail: 'reply interrupted' })
    expect(app.requests.length).toBe(1)
  })

  it('a keep-alive connection the app closed as the request went out is retried once on a fresh one', async () => {
    // Each connection carries one answered request; the next request on it is dropped unanswered.
    const app = await startApp((req, res, _body, n) => {
      if (n === 1) res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":1}')
      else req.socket.destroy()
    })
    const p = pool(app.url)
    const send = createSender(p)
    expect((await send(request(app.url))).status).toBe(200)
    await idle(p)
    const again = await send(request(app.url, { body: '{"n":2}' }))
    expect(again.status).toBe(200)
    expect(app.connections()).toBe(2)
    expect(app.requests.map((r) => r.body)).toEqual(['{"n":1}', '{"n":2}', '{"n":2}'])
  })
})
