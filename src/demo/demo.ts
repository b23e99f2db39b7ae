import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import type { CallbackHandler } from '../receiver/plugin.js'
import type { TicketContext } from '../tickets/issuer.js'
import { buildApp } from '../server/app.js'
import { loadConfig } from '../server/config.js'
import { DEFAULT_KEY_ORIGINS } from '../protocol/key-url.js'
import { startSimulator, type Simulator } from '../sim/server.js'
import { wholeNumberOption } from '../options.js'

/**
 * The browser-upload demo: the one place where the simulator, the receiver and an
 * app backend meet. Three servers on one host:
 * - the simulator, standing in for OSS (PostObject, CORS, signed callbacks);
 * - the receiver (the standalone server's app), trusting the simulator's key, tickets on;
 * - a demo backend, as an app's own backend would be: it serves the upload page and holds
 *   the bearer token, fetching tickets from the receiver for its browser.
 */

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** Port of the upload page; 0 picks a free one. Default 8000. */
  port?: number
  /** Address every server listens on. Default `127.0.0.1`. */
  host?: string
  /** Largest upload the tickets allow, in bytes. Default 10485760 (10 MiB). */
  maxSizeBytes?: number
  /** One line per event (uploads, callbacks, refusals). Default: silent. */
  log?: (line: string) => void
}

/** A running demo. */
export interface Demo {
  /** The upload page. */
  url: string
  /** The simulator's origin (the browser's upload URL is under it). */
  simOrigin: string
  /** The receiver's origin (its callback path is `/oss/callback`). */
  receiverOrigin: string
  close: () => Promise<void>
}

/** The bucket the demo uploads to. */
export const DEMO_BUCKET = 'demo-bucket'
/** Who the demo backend asks tickets for: a stand-in for the app's signed-in user. */
export const DEMO_SUBJECT = 'demo-user'

const PUBLIC_FILES: Readonly<Record<string, string>> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css'
}
const MEDIA_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8'
}

async function loadPublicFiles (): Promise<Map<string, { body: Buffer, type: string }>> {
  // Next to this module: src/demo/public when run from source, dist/demo/public once built (copied by the build).
  const dir = new URL('./public/', import.meta.url)
  const files = new Map<string, { body: Buffer, type: string }>()
  for (const [route, name] of Object.entries(PUBLIC_FILES)) {
    const body = await readFile(new URL(name, dir))
    files.set(route, { body, type: MEDIA_TYPES[name.split('.').pop() as string] as string })
  }
  return files
}

async function freePort (host: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo
      server.close(() => { resolve(port) })
    })
  })
}

interface RecordedCallback {
  url: string
  headers: Record<string, string>
  body: Buffer
}

/** Starts the simulator, the receiver and the demo backend. */
export async function startDemo (options: DemoOptions = {}): Promise<Demo> {
  const host = options.host ?? '127.0.0.1'
  const pagePort = wholeNumberOption('port', options.port, 8000, { min: 0, max: 65535 })
  const maxSizeBytes = options.maxSizeBytes ?? 10 * 1024 * 1024
  const log = options.log ?? (() => {})
  const files = await loadPublicFiles()

  const started: Array<() => Promise<void>> = []
  const closeAll = async (): Promise<void> => {
    for (const close of started.reverse()) await close().catch(() => {})
  }
  try {
    const sim: Simulator = await startSimulator({ port: 0, host, log: (line) => { log(`oss  ${line}`) } })
    started.push(sim.close)

    // The callback URL goes into every policy, so the receiver's port is chosen before it is built.
    const receiverPort = await freePort(host)
    const receiverOrigin = `http://${host}:${receiverPort}`
    const token = randomBytes(24).toString('base64url')
    const config = loadConfig({
      HOST: host,
      PORT: String(receiverPort),
      LOG_LEVEL: 'silent',
      // The production origins stay in the list (it replaces the default), as the README tells users to write it.
      OSS_CALLBACK_KEY_ORIGINS: [...DEFAULT_KEY_ORIGINS, sim.origin].join(','),
      OSS_CALLBACK_TICKET_TOKEN: token,
      OSS_ACCESS_KEY_ID: sim.credentials.accessKeyId,
      OSS_ACCESS_KEY_SECRET: sim.credentials.accessKeySecret,
      OSS_BUCKET: DEMO_BUCKET,
      OSS_ENDPOINT: sim.origin,
      OSS_REGION: 'cn-hangzhou',
      OSS_CALLBACK_PUBLIC_URL: `${receiverOrigin}/oss/callback`,
      OSS_CALLBACK_TICKET_MAX_SIZE_BYTES: String(maxSizeBytes)
    })

    let lastCallback: RecordedCallback | undefined
    const handler: CallbackHandler<TicketContext> = (callback, { request, ticket }) => {
      // Kept so the page can show what a replay gets.
      lastCallback = {
        url: request.url,
        headers: {
          authorization: String(request.headers.authorization),
          'x-oss-pub-key-url': String(request.headers['x-oss-pub-key-url']),
          'content-type': String(request.headers['content-type'])
        },
        body: callback.raw
      }
      log(`recv callback for ${callback.system.object ?? '?'} (${callback.system.size ?? '?'} B), ticket of ${ticket?.subject ?? 'nobody'}`)
      return {
        Status: 'OK',
        bucket: callback.system.bucket,
        key: callback.system.object,
        size: callback.system.size,
        mimeType: callback.system.mimeType,
        etag: callback.system.etag,
        ticket: ticket === undefined ? null : { id: ticket.id, subject: ticket.subject, issuedAt: ticket.issuedAt, expiresAt: ticket.expiresAt }
      }
    }
    const receiver = await buildApp(config, { handler })
    receiver.addHook('onResponse', async (request, reply) => {
      if (reply.statusCode >= 400) log(`recv ${request.method} ${request.url.split('?')[0] ?? ''} -> ${reply.statusCode}`)
    })
    await receiver.listen({ host, port: receiverPort })
    started.push(async () => { await receiver.close() })

    const backend = buildBackend({ files, receiverOrigin, token, lastCallback: () => lastCallback, log })
    const pageOrigin = await backend.listen({ host, port: pagePort })
    started.push(async () => { await backend.close() })
    return { url: `${pageOrigin}/`, simOrigin: sim.origin, receiverOrigin, close: closeAll }
  } catch (err) {
    await closeAll()
    throw err
  }
}

interface BackendOptions {
  files: Map<string, { body: Buffer, type: string }>
  receiverOrigin: string
  token: string
  lastCallback: () => RecordedCallback | undefined
  log: (line: string) => void
}

/** The app backend of the demo: the page, a ticket proxy holding the token, and a replay button's endpoint. */
function buildBackend (options: BackendOptions): FastifyInstance {
  const { files, receiverOrigin, token, log } = options
  // A browser keeps spare sockets open that never sent a request; closing only idle connections left
  // those until the 60 s headers timeout, so close() could take a minute (the Chromium test's old stall).
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024, forceCloseConnections: true })

  for (const [route, file] of files) {
    app.get(route, async (_request, reply) => reply.type(file.type).header('cache-control', 'no-store').send(file.body))
  }

  app.post('/api/ticket', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>
    // The app decides who the user is (its session); the browser only describes its file.
    const ask = { filename: body.filename, contentType: body.contentType, size: body.size, subject: DEMO_SUBJECT }
    const res = await fetch(`${receiverOrigin}/oss/upload-tickets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(ask),
      signal: AbortSignal.timeout(5000)
    })
    const text = await res.text()
    log(`app  ticket for ${String(body.filename)} -> ${res.status}`)
    return reply.code(res.status).type('application/json').header('cache-control', 'no-store').send(text)
  })

  app.post('/api/replay-last-callback', async (_request, reply) => {
    const last = options.lastCallback()
    if (last === undefined) return reply.code(404).send({ error: 'no callback yet: upload a file first' })
    // Exactly the bytes OSS sent, signature and all: it verifies, and the ticket refuses it.
    const res = await fetch(receiverOrigin + last.url, { method: 'POST', headers: last.headers, body: last.body, signal: AbortSignal.timeout(5000) })
    const text = await res.text()
    log(`app  replayed the last callback -> ${res.status}`)
    return reply.send({ status: res.status, body: JSON.parse(text) as unknown })
  })
  return app
}
