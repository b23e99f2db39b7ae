import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/** One request the upstream received. */
export interface UpstreamRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

/** How the upstream answers a request whose body it has read. `hang` never answers. */
export type UpstreamBehaviour = (request: UpstreamRequest, res: ServerResponse) => void

/** A stand-in for a team's app behind forward mode, on 127.0.0.1. */
export interface Upstream {
  url: (path: string) => string
  /** Changes how later requests are answered. */
  behave: (behaviour: UpstreamBehaviour) => void
  received: UpstreamRequest[]
  /** TCP connections accepted so far (keep-alive reuse keeps this low). */
  connections: () => number
  close: () => Promise<void>
}

/** Starts an upstream on a free loopback port; by default it answers 204. */
export async function startUpstream (behaviour: UpstreamBehaviour = (_r, res) => { res.writeHead(204).end() }): Promise<Upstream> {
  let current = behaviour
  const received: UpstreamRequest[] = []
  const sockets = new Set<Socket>()
  let connections = 0
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) }
      received.push(request)
      current(request, res)
    })
  })
  server.on('connection', (s) => { connections++; sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    behave: (b) => { current = b },
    received,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** Answers 200 with `body` and an exact Content-Length. */
export function answerJson (body: string | Buffer, status = 200): UpstreamBehaviour {
  return (_req, res) => {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes)
  }
}
