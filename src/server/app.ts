import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { KeyProviderOptions } from '../keys/provider.js'
import { KeyProvider } from '../keys/provider.js'
import { ossCallback, sendError, toOssError, type CallbackHandler } from '../receiver/plugin.js'
import type { SignatureVerifier } from '../receiver/signature-verifier.js'
import { createCallbackVerifier, type VerifiedCallback } from '../receiver/verify.js'
import { ossError } from '../errors.js'
import { createRedisTicketStore } from '../tickets/redis-store.js'
import { bearerAuthorizer } from '../tickets/route.js'
import { createMemoryTicketStore, type TicketStore } from '../tickets/store.js'
import type { ServerConfig } from './config.js'
import { createForwarder } from './forward.js'
import { createServerMetrics } from './metrics.js'

/** Things tests and embedders inject into {@link buildApp}. */
export interface AppDependencies {
  /** A pino logger to use instead of one built from `config.logLevel`. */
  logger?: FastifyBaseLogger
  /** Key provider settings (fetch, clock, cache) besides the configured timeout. */
  keys?: Omit<KeyProviderOptions, 'fetchTimeoutMs'>
  /** Replace the signature check (tests of the node-forge fallback). */
  nativeSignatureVerifier?: SignatureVerifier
  /**
   * Handle verified callbacks. Default: forward mode when `config.forwardUrl` is set,
   * otherwise `{"Status":"OK", ...system fields}`.
   */
  handler?: CallbackHandler
  /** Forward mode's clock for `webhook-timestamp` and its `webhook-id` maker (tests). */
  forward?: { now?: () => number, messageId?: () => string }
  /** With tickets on: the store to use (and not close). Default: Redis when configured, else memory. */
  ticketStore?: TicketStore
  /** The clock of upload tickets, epoch ms. Default `Date.now`. */
  now?: () => number
}

/** Node's own request timeouts, which Fastify would otherwise disable. In ms. */
export const SERVER_TIMEOUTS = Object.freeze({
  /** Whole request, headers and body. */
  requestTimeoutMs: 10_000,
  /** Headers alone. */
  headersTimeoutMs: 5_000,
  /** An idle socket. */
  connectionTimeoutMs: 30_000,
  /** An idle keep-alive connection between requests. */
  keepAliveTimeoutMs: 5_000
})

/** The default handler of the standalone server. */
export const defaultHandler = (callback: VerifiedCallback): Record<string, unknown> => ({ Status: 'OK', ...callback.system })

/**
 * Builds the standalone receiver. It never listens: `serve` does, and tests use
 * `app.inject` or `app.listen({ port: 0 })`. Throws a coded error when the
 * configuration is invalid or the self-test fails.
 */
export async function buildApp (config: ServerConfig, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const keys = new KeyProvider({ ...deps.keys, fetchTimeoutMs: config.keyFetchTimeoutMs })
  const verifier = createCallbackVerifier({
    keyOrigins: config.keyOrigins,
    publicPath: config.publicPath,
    keys,
    nativeSignatureVerifier: deps.nativeSignatureVerifier
  })

  const forwarder = config.forwardUrl === undefined || deps.handler !== undefined
    ? undefined
    : createForwarder({
      url: config.forwardUrl,
      secret: config.forwardSecret ?? '',
      timeoutMs: config.forwardTimeoutMs,
      maxSockets: config.forwardMaxSockets,
      noContentReply: defaultHandler,
      now: deps.forward?.now,
      messageId: deps.forward?.messageId,
      onOutcome: (outcome, seconds) => metrics.forwardFinished(outcome, seconds)
    })

  const app = Fastify({
    ...(deps.logger === undefined ? { logger: { level: config.logLevel } } : { loggerInstance: deps.logger }),
    // One log line per refused callback comes from the plugin; none on success at info.
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: SERVER_TIMEOUTS.requestTimeoutMs,
    connectionTimeout: SERVER_TIMEOUTS.connectionTimeoutMs,
    keepAliveTimeout: SERVER_TIMEOUTS.keepAliveTimeoutMs,
    // Requests already on a connection when a shutdown starts still get served (a callback
    // refused here would be a 203 for the uploader); /readyz says NOT_READY with its own code.
    return503OnClosing: false,
    bodyLimit: config.bodyLimitBytes
  })
  app.server.headersTimeout = SERVER_TIMEOUTS.headersTimeoutMs

  if (verifier.verifierName === 'node-forge') {
    app.log.warn('OpenSSL refused RSA-MD5 in the start-up self-test: verifying with node-forge instead')
  } else {
    app.log.info({ verifier: verifier.verifierName }, 'self-test passed')
  }
  if (forwarder !== undefined && config.forwardUrl !== undefined) {
    // Origin and path only: a query may carry a token.
    const target = new URL(config.forwardUrl)
    app.log.info({ forwardTo: target.origin + target.pathname, forwardTimeoutMs: config.forwardTimeoutMs }, 'forward mode: verified callbacks go to the upstream app')
  }

  const ticketConfig = config.tickets
  let ticketStore: TicketStore | undefined
  if (ticketConfig !== undefined) {
    ticketStore = deps.ticketStore ?? (ticketConfig.redisUrl !== undefined
      ? createRedisTicketStore({ url: ticketConfig.redisUrl })
      : createMemoryTicketStore({ now: deps.now }))
    if (deps.ticketStore === undefined) {
      const owned = ticketStore
      app.addHook('onClose', async () => { await owned.close() })
    }
  }

  let ready = false
  let closing = false
  app.addHook('onReady', async () => { ready = true })
  app.addHook('preClose', async () => {
    closing = true
    // A connection whose request is still in flight is not closed with the idle ones; without
    // this it would stay open for keepAliveTimeout after its last reply and hold up the exit.
    app.server.keepAliveTimeout = 1
  })
  if (forwarder !== undefined) app.addHook('onClose', async () => forwarder.close())

  const metrics = createServerMetrics({ keys, verifierName: verifier.verifierName, forward: forwarder !== undefined })
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.scrape()
    return reply.header('content-type', metrics.contentType).send(text)
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    if (!ready || closing) return sendError(reply, ossError('NOT_READY', closing ? 'shutting down' : 'starting'))
    if (ticketStore?.isReady?.() === false) return sendError(reply, ossError('NOT_READY', 'ticket store not connected'))
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
    handler: deps.handler ?? forwarder?.handler ?? defaultHandler,
    onSuccess: metrics.callbackSucceeded,
    onFailure: (error) => metrics.callbackFailed(error),
    onVerification: metrics.verificationObserved,
    ...(ticketConfig === undefined || ticketStore === undefined
      ? {}
      : {
          tickets: {
            ...ticketConfig,
            store: ticketStore,
            authorize: bearerAuthorizer(ticketConfig.token),
            ...(deps.now === undefined ? {} : { now: deps.now })
          }
        })
  })
  return app
}
