import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One request the fake OSS received. */
export interface SeenRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

/** Answers one request; `seen` holds it and every earlier one. */
export type FakeHandler = (req: SeenRequest, res: ServerResponse, seen: readonly SeenRequest[]) => void | Promise<void>

/** A loopback HTTP server standing in for OSS in unit tests: records requests, answers as told. */
export interface FakeOss {
  endpoint: string
  port: number
  seen: SeenRequest[]
  close: () => Promise<void>
}

export async function startFakeOss (handler: FakeHandler): Promise<FakeOss> {
  const seen: SeenRequest[] = []
  // ali-oss sends Transfer-Encoding and Content-Length together on streamed bodies, as OSS accepts.
  const server: Server = createServer({ insecureHTTPParser: true }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) }
      seen.push(r)
      Promise.resolve(handler(r, res, seen)).catch((err: unknown) => {
        res.statusCode = 500
        res.end(String(err))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** OSS's XML error body. */
export function ossErrorXml (code: string, message: string, requestId = 'REQ1', ec = '0002-00000040'): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>${code}</Code>\n  <Message>${message}</Message>\n  <RequestId>${requestId}</RequestId>\n  <HostId>bucket.oss-cn-hangzhou.aliyuncs.com</HostId>\n  <EC>${ec}</EC>\n</Error>\n`
}
