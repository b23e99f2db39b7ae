import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterAll, beforeAll } from 'vitest'
import { testKeyPair } from './keys.js'

/** How the key server answers one path. */
export type KeyRoute =
  | { kind: 'pem', pem: string, delayMs?: number }
  | { kind: 'redirect', location: string, status?: number }
  | { kind: 'status', status: number }
  | { kind: 'bytes', bytes: number }
  | { kind: 'hang' }
  | { kind: 'dribble', intervalMs: number }
  | { kind: 'text', body: string }

/** A key server on 127.0.0.1 that counts every request it sees. */
export interface KeyServer {
  origin: string
  url: (path: string) => string
  routes: Map<string, KeyRoute>
  /** Requests seen, by path. */
  hits: Map<string, number>
  total: () => number
  close: () => Promise<void>
}

/** Starts a key server on a free loopback port. Unknown paths answer 404. */
export async function startKeyServer (routes: Record<string, KeyRoute> = {}): Promise<KeyServer> {
  const table = new Map(Object.entries(routes))
  const hits = new Map<string, number>()
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] as string
    hits.set(path, (hits.get(path) ?? 0) + 1)
    const route = table.get(path)
    if (route === undefined) { res.writeHead(404).end('not found'); return }
    switch (route.kind) {
      case 'pem': {
        const send = (): void => { res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(route.pem) }
        if (route.delayMs === undefined) send()
        else { const t = setTimeout(send, route.delayMs); timers.add(t) }
        return
      }
      case 'redirect': res.writeHead(route.status ?? 302, { location: route.location }).end(); return
      case 'status': res.writeHead(route.status).end('no'); return
      case 'text': res.writeHead(200, { 'content-type': 'text/plain' }).end(route.body); return
      case 'bytes': {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const chunk = Buffer.alloc(64 * 1024, 0x41)
        let left = route.bytes
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, chunk.length)
            left -= n
            if (!res.write(chunk.subarray(0, n))) { res.once('drain', pump); return }
          }
          res.end()
        }
        res.on('error', () => {})
        pump()
        return
      }
      case 'hang': return
      case 'dribble': {
        res.writeHead(200, { 'content-type': 'application/x-pem-file' })
        const t = setInterval(() => { res.write('-') }, route.intervalMs)
        timers.add(t)
        res.on('close', () => clearInterval(t))
        return
      }
    }
  })
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const origin = `http://127.0.0.1:${port}`
  return {
    origin,
    url: (path) => `${origin}${path}`,
    routes: table,
    hits,
    total: () => [...hits.values()].reduce((a, b) => a + b, 0),
    close: async () => {
      for (const t of timers) { clearTimeout(t); clearInterval(t) }
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/**
 * For a test file whose callbacks are signed by the 512-bit test key: a key server serving its public key at
 * `/k.pem`, started before the file's tests and closed after them. `url()` is the key's URL.
 */
export function useTestKeyServer (): { origin: () => string, url: () => string } {
  let server: KeyServer | undefined
  beforeAll(async () => { server = await startKeyServer({ '/k.pem': { kind: 'pem', pem: testKeyPair(512).publicPem } }) })
  afterAll(async () => { await server?.close() })
  return { origin: () => (server as KeyServer).origin, url: () => (server as KeyServer).url('/k.pem') }
}
