import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { KeyProviderOptions } from '../keys/provider.js'
import { KeyProvider } from '../keys/provider.js'
import { errorReplyOf, ossCallback, sendError, toOssError, type CallbackHandler } from '../receiver/plugin.js'
import type { SignatureVerifier } from '../receiver/signature-verifier.js'
import { createCallbackVerifier } from '../receiver/verify.js'
import { invalidOption, ossError, type OssCallbackError } from '../errors.js'
import type { ServerConfig } from './config.js'

/** Things tests and embedders inject into {@link buildApp}. */
export interface AppDependencies {
  /** A pino logger to use instead of one built from `config.logLevel`. */
  logger?: FastifyBaseLogger
  /** Key provider settings (fetch, clock, cache) besides the configured timeout. */
  keys?: Omit<KeyProviderOptions, 'fetchTimeoutMs'>
  /** Replace the signature check (tests of the node-forge fallback). */
  nativeSignatureVerifier?: SignatureVerifier
  /** Handle verified callbacks. Default: `{"Status":"OK", ...system fields}`. */
  handler?: CallbackHandler
  /** Replace some of Node's request timeouts (tests use short ones). Default: {@link SERVER_TIMEOUTS}. */
  timeouts?: Partial<ServerTimeouts>
}

/** Node's own request timeouts, in ms; a slow client past one gets 408 `OSS_CB_ERR_REQUEST_TIMEOUT`. */
export interface ServerTimeouts {
  /** Whole request, headers and body, in ms. Default 10000. */
  requestTimeoutMs: number
  /** Headers alone, in ms; at most `requestTimeoutMs`. Default 5000. */
  headersTimeoutMs: number
  /** An idle socket, in ms. Default 30000. */
  connectionTimeoutMs: number
  /** An idle keep-alive connection between requests, in ms. Default 5000. */
  keepAliveTimeoutMs: number
  /** How often Node checks the two timeouts above, in ms; a late check lets a slow client hold on longer. Default 1000. */
  connectionsCheckingIntervalMs: number
}

/** Node's own request timeouts, which Fastify would otherwise disable. In ms. */
export const SERVER_TIMEOUTS: Readonly<ServerTimeouts> = Object.freeze({
  /** Whole request, headers and body. */
  requestTimeoutMs: 10_000,
  /** Headers alone. */
  headersTimeoutMs: 5_000,
  /** An idle socket. */
  connectionTimeoutMs: 30_000,
  /** An idle keep-alive connection between requests. */
  keepAliveTimeoutMs: 5_000,
  /** Node's default (30 s) would let a slowloris client outlive `headersTimeoutMs` sixfold. */
  connectionsCheckingIntervalMs: 1_000
})

function resolveTimeouts (given: Partial<ServerTimeouts> = {}): ServerTimeouts {
  const t: ServerTimeouts = { ...SERVER_TIMEOUTS }
  for (const name of Object.keys(SERVER_TIMEOUTS) as Array<keyof ServerTimeouts>) {
    const v = given[name]
    if (v === undefined) continue
    if (!Number.isSafeInteger(v) || v <= 0) throw invalidOption(`timeouts.${name} must be a positive whole number, got ${String(v)}`)
    t[name] = v
  }
  if (t.headersTimeoutMs > t.requestTimeoutMs) throw invalidOption('timeouts.headersTimeoutMs must not exceed timeouts.requestTimeoutMs')
  return t
}

/**
 * Answers HTTP-level errors Node raises before Fastify sees a request (a slow
 * client timing out, oversized or malformed headers) with a coded JSON error,
 * like every other reply, then closes the socket.
 */
function clientErrorHandler (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  let coded: OssCallbackError
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') coded = ossError('REQUEST_TIMEOUT', 'client too slow')
  else if (err.code === 'HPE_HEADER_OVERFLOW') coded = ossError('HEADERS_TOO_LARGE', 'headers over the parser limit')
  else coded = ossError('BAD_REQUEST', 'malformed HTTP request')
  this.log.debug({ code: coded.code, reason: coded.reason, parserError: err.code }, 'client error')
  if (socket.writable) {
    const body = JSON.stringify(errorReplyOf(coded))
    socket.write(`HTTP/1.1 ${coded.statusCode} ${STATUS_CODES[coded.statusCode] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}


/** The default handler of the standalone server. */
export const defaultHandler: CallbackHandler = (callback) => ({ Status: 'OK', ...callback.system })

/**
 * Builds the standalone receiver. It never listens: `serve` does, and tests use
 * `app.inject` or `app.listen({ port: 0 })`. Throws a coded error when the
 * configuration is invalid or the self-test fails.
 */
export async function buildApp (config: ServerConfig, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const timeouts = resolveTimeouts(deps.timeouts)
  const keys = new KeyProvider({ ...deps.keys, fetchTimeoutMs: config.keyFetchTimeoutMs })
  const verifier = createCallbackVerifier({
    keyOrigins: config.keyOrigins,
    publicPath: config.publicPath,
    keys,
    nativeSignatureVerifier: deps.nativeSignatureVerifier
  })

  const app = Fastify({
    ...(deps.logger === undefined ? { logger: { level: config.logLevel } } : { loggerInstance: deps.logger }),
    // One log line per refused callback comes from the plugin; none on success at info.
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: timeouts.requestTimeoutMs,
    connectionTimeout: timeouts.connectionTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    http: { connectionsCheckingInterval: timeouts.connectionsCheckingIntervalMs },
    clientErrorHandler,
    // Fastify's own 503 while closing has no code; the onRequest hook below answers a coded one.
    return503OnClosing: false,
    bodyLimit: config.bodyLimitBytes
  })
  app.server.headersTimeout = timeouts.headersTimeoutMs

  if (verifier.verifierName === 'node-forge') {
    app.log.warn('OpenSSL refused RSA-MD5 in the start-up self-test: verifying with node-forge instead')
  } else {
    app.log.info({ verifier: verifier.verifierName }, 'self-test passed')
  }

  let ready = false
  let closing = false
  app.addHook('onReady', async () => { ready = true })
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async (request, reply) => {
    // A request that reaches a kept-alive connection after shutdown began; in-flight ones are past this hook.
    if (closing) return sendError(reply.header('connection', 'close'), ossError('NOT_READY', 'shutting down'))
    // Answer unknown paths before any body is read or parsed: nothing of a stranger's body is worth a parser's time.
    if (request.is404) return sendError(reply, ossError('NOT_FOUND', 'no such route'))
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    if (!ready || closing) return sendError(reply, ossError('NOT_READY', closing ? 'shutting down' : 'starting'))
    return { status: 'ready', verifier: verifier.verifierName }
  })

  app.setNotFoundHandler((_request, reply) => sendError(reply, ossError('NOT_FOUND', 'no such route')))
  app.setErrorHandler((error, request, reply) => {
    const err = toOssError(error as Error)
    if (err.statusCode >= 500) request.log.error({ code: err.code, err: error }, 'request failed')
    return sendError(reply, err)
  })

  await app.register(ossCallback, {
    path: config.path,
    verifier,
    deadlineMs: config.deadlineMs,
    bodyLimitBytes: config.bodyLimitBytes,
    handler: deps.handler ?? defaultHandler
  })
  return app
}
