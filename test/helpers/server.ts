import { STATUS_CODES, request as httpRequest } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { expect } from 'vitest'
import { errors, type OssCallbackError } from '../../src/errors.js'
import { buildApp, type AppDependencies } from '../../src/server/app.js'
import { loadConfig, type ServerConfig } from '../../src/server/config.js'
import { captureLogger } from './log-capture.js'

/** A logger writing every line to memory, at trace level, so tests can read the log. */
export type MemoryLog = ReturnType<typeof captureLogger>

export function memoryLogger (): MemoryLog {
  return captureLogger('trace')
}

/** A full server configuration with the documented defaults, for tests. */
export function testConfig (overrides: Partial<ServerConfig> = {}): ServerConfig {
  return { ...loadConfig({ HOST: '127.0.0.1', PORT: '0' }), ...overrides }
}

/** A receiver listening on 127.0.0.1 with a free port. */
export interface RunningApp {
  app: FastifyInstance
  port: number
  origin: string
  log: MemoryLog
  close: () => Promise<void>
}

export async function startApp (config: ServerConfig, deps: Omit<AppDependencies, 'logger'> = {}): Promise<RunningApp> {
  const log = memoryLogger()
  const app = await buildApp(config, { ...deps, logger: log.logger })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { app, port, origin: `http://127.0.0.1:${port}`, log, close: () => app.close() }
}

/** The exact error reply the registry defines for `code`. */
export function errorBody (code: string): { statusCode: number, code: string, error: string, message: string } {
  const entry = Object.values(errors).map((E) => new (E as new () => OssCallbackError)()).find((e) => e.code === code)
  if (entry === undefined) throw new Error(`no such code ${code}`)
  return { statusCode: entry.statusCode, code, error: STATUS_CODES[entry.statusCode] as string, message: entry.message }
}

/** A response as the tests read it. */
export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** Asserts a coded JSON error reply: status, content type, exact length and the full body. */
export function expectCodedError (res: Reply, code: string): void {
  const expected = errorBody(code)
  expect({ status: res.status, body: res.body === '' ? undefined : JSON.parse(res.body) as unknown }).toEqual({ status: expected.statusCode, body: expected })
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
  expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body))
}

/** Sends raw bytes on a new connection and reads until the server closes it (or `timeoutMs`). */
export function rawRequest (port: number, data: string | Buffer, timeoutMs = 10_000): Promise<Reply & { raw: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('raw request timed out')) }, timeoutMs)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      const raw = Buffer.concat(chunks).toString('latin1')
      resolve({ raw, ...parseRawResponse(raw) })
    })
    socket.write(data)
  })
}

/** Parses one HTTP/1.1 response with a Content-Length body. */
export function parseRawResponse (raw: string): Reply {
  const end = raw.indexOf('\r\n\r\n')
  if (end === -1) return { status: 0, headers: {}, body: '' }
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const c = line.indexOf(':')
    headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim()
  }
  const length = Number(headers['content-length'] ?? '0')
  const body = Buffer.from(raw.slice(end + 4), 'latin1').subarray(0, length).toString('utf8')
  return { status: Number((statusLine ?? '').split(' ')[1]), headers, body }
}

/** Options of {@link post}. */
export interface PostOptions {
  method?: string
  headers?: Record<string, string>
  body?: Buffer | string
  /** Send the body chunked (no Content-Length). */
  chunked?: boolean
  /** A new connection per request, as OSS does. Default true. */
  close?: boolean
}

/** One HTTP request over a real socket. */
export function post (origin: string, path: string, options: PostOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : Buffer.from(options.body)
    const headers: Record<string, string | number> = { ...options.headers }
    if (options.close !== false) headers.connection = 'close'
    if (body !== undefined && options.chunked !== true) headers['content-length'] = body.length
    const req = httpRequest(`${origin}${path}`, { method: options.method ?? 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body !== undefined && options.chunked === true) {
      const half = Math.floor(body.length / 2)
      req.write(body.subarray(0, half))
      req.end(body.subarray(half))
    } else {
      req.end(body)
    }
  })
}

/** GET /healthz answers 200. */
export async function expectHealthy (origin: string): Promise<void> {
  const res = await post(origin, '/healthz', { method: 'GET' })
  expect(res.status).toBe(200)
  expect(JSON.parse(res.body)).toEqual({ status: 'ok' })
}

/**
 * Asserts the log holds none of `secrets` (signatures as sent, PEM bodies) and
 * no PEM armour at all.
 */
export function expectNoSecretsInLog (log: MemoryLog, secrets: Iterable<string>): void {
  const text = log.text()
  expect(text).not.toMatch(/BEGIN (RSA )?(PUBLIC|PRIVATE) KEY/)
  for (const s of secrets) {
    if (s.length < 16) continue
    expect(text.includes(s), `log leaks ${s.slice(0, 12)}...`).toBe(false)
  }
}

/** The base64 lines of a PEM, the parts that would leak a key. */
export function pemBodyLines (pem: string): string[] {
  return pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'))
}
