import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { KeyProviderOptions } from '../keys/provider.js'
import { KeyProvider } from '../keys/provider.js'
import { isLingering, LINGER_DEFAULTS, lingeringClose, type LingerOptions } from '../receiver/lingering-close.js'
import { errorReplyOf, ossCallback, sendError, toOssError, type CallbackHandler } from '../receiver/plugin.js'
import type { SignatureVerifier } from '../receiver/signature-verifier.js'
import { createCallbackVerifier, type VerifiedCallback } from '../receiver/verify.js'
import { invalidOption, ossError, type OssCallbackError } from '../errors.js'
import { createUploadTickets, type TicketContext, type UploadTickets } from '../tickets/issuer.js'
import { createRedisTicketStore, type RedisTicketStoreOptions } from '../tickets/redis-store.js'
import { bearerAuthorizer, ticketRoutes } from '../tickets/route.js'
import { createMemoryTicketStore, type TicketStore } from '../tickets/store.js'
import type { ServerConfig } from './config.js'
import { createForwarder } from './forward.js'
import { createGatewayHandler } from './gateway.js'
import { createServerMetrics } from './metrics.js'
import { wholeNumberOption } from '../options.js'
import { createDeliveryWorker, type DeliveryWorker, type DeliveryWorkerOptions } from '../delivery/worker.js'
import { openEventStore } from '../events/open.js'
import { deleteExpiredEvents } from '../events/retention.js'
import type { EventStore, StoreOptions } from '../events/store.js'

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
   * otherwise `{"Status":"OK", ...system fields}`. With tickets on, its context has the consumed `ticket`.
   */
  handler?: CallbackHandler<TicketContext>
  /** Forward mode's clock for `webhook-timestamp` and its `webhook-id` maker (tests). */
  forward?: { now?: () => number, messageId?: () => string }
  /** With tickets on: the store to use (and not close). Default: Redis when configured, else memory. */
  ticketStore?: TicketStore
  /** The configured Redis store's timings (tests use short ones). Default: the store's own. */
  redisTicketStore?: Pick<RedisTicketStoreOptions, 'commandTimeoutMs' | 'healthCheckIntervalMs' | 'healthCheckTimeoutMs'>
  /** The clock of upload tickets, epoch ms. Default `Date.now`. */
  now?: () => number
  /** Replace some of Node's request timeouts (tests use short ones). Default: {@link SERVER_TIMEOUTS}. */
  timeouts?: Partial<ServerTimeouts>
  /** Bounds of the lingering close after an early refusal (tests use short ones). Default: {@link LINGER_DEFAULTS}. */
  lingeringClose?: Partial<LingerOptions>
  /** Opens the event store of `config.databaseUrl` (tests inject a failing driver loader). Default: `openEventStore`. */
  openEventStore?: (url: string, options: StoreOptions) => Promise<EventStore>
  /** The event store's clock, ms since the epoch (tests use a fake one). Default `Date.now`. */
  storeNow?: () => number
  /** Delivery worker settings besides the configured ones (tests: clock, poll interval, back-off). */
  delivery?: Partial<Omit<DeliveryWorkerOptions, 'store' | 'url' | 'secret'>>
  /** How often retention deletes expired events, in ms. Default 600000. */
  retentionIntervalMs?: number
  /** How long `/readyz` waits for the store's write probe, in ms. Default 2000. */
  storeProbeTimeoutMs?: number
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
    t[name] = wholeNumberOption(`timeouts.${name}`, given[name], t[name])
  }
  if (t.headersTimeoutMs > t.requestTimeoutMs) throw invalidOption('timeouts.headersTimeoutMs must not exceed timeouts.requestTimeoutMs')
  return t
}

type ServerSocket = Socket & { _httpMessage?: ServerResponse | null }

/**
 * Answers HTTP-level errors Node raises before Fastify sees a request (a slow
 * client timing out, oversized or malformed headers) with a coded JSON error,
 * like every other reply, then closes the socket with a lingering close.
 */
function clientErrorHandler (linger: LingerOptions) {
  const closingAfterPending = new WeakSet<Socket>()
  return function (this: FastifyInstance, err: NodeJS.ErrnoException, socket: ServerSocket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed || isLingering(socket) || closingAfterPending.has(socket)) return
    let coded: OssCallbackError
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') coded = ossError('REQUEST_TIMEOUT', 'client too slow')
    else if (err.code === 'HPE_HEADER_OVERFLOW') coded = ossError('HEADERS_TOO_LARGE', 'headers over the parser limit')
    else coded = ossError('BAD_REQUEST', 'malformed HTTP request')
    this.log.debug({ code: coded.code, reason: coded.reason, parserError: err.code }, 'client error')
    const pending = socket._httpMessage
    if (pending != null && (pending.req.complete || pending.headersSent)) {
      // An earlier request on this connection (a callback in progress) still has its response to come: an
      // error reply written now would be read as that response. Send no reply; close after the pending ones.
      // (A response whose own request is still arriving, and not started, is the one this error is about.)
      closingAfterPending.add(socket)
      closeAfterResponses(socket, linger)
      return
    }
    if (socket.writable) {
      const body = JSON.stringify(errorReplyOf(coded))
      socket.write(`HTTP/1.1 ${coded.statusCode} ${STATUS_CODES[coded.statusCode] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    }
    lingeringClose(socket, linger)
  }
}

/** Waits for the response in progress on `socket` and any queued behind it (Node assigns the next on 'finish'), then closes. */
function closeAfterResponses (socket: ServerSocket, linger: LingerOptions): void {
  const pending = socket._httpMessage
  if (pending == null) { lingeringClose(socket, linger); return }
  pending.once('finish', () => { closeAfterResponses(socket, linger) })
  pending.once('close', () => { if (socket._httpMessage === pending) socket.destroy() })
}

/** The server's own GET routes (Fastify adds HEAD to each); another method on them gets 405 with `Allow`. */
const GET_PATHS = new Set(['/healthz', '/readyz', '/metrics'])

function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/**
 * The one start-up line saying what the receiver accepts, so that an operator can check it at a glance.
 * It names no secret, token or query string: the forward URL is cut to its origin and path (a query may
 * carry a token), and Redis is only on or off (its URL may carry a password).
 */
function logAcceptance (log: FastifyBaseLogger, config: ServerConfig, pinnedKeyUrls: string[], forwarding: boolean): void {
  const tickets = config.tickets
  let forwardTo: string | null = null
  if (forwarding && config.forwardUrl !== undefined) {
    const target = new URL(config.forwardUrl)
    forwardTo = target.origin + target.pathname
  }
  log.info({
    callbackPath: config.path,
    publicPath: config.publicPath ?? null,
    keyOrigins: config.keyOrigins,
    pinnedKeyUrls,
    buckets: config.buckets ?? 'any',
    forwardTo,
    tickets: tickets === undefined ? 'off' : tickets.allowCallbacksWithoutTicket ? 'on (callbacks without a ticket allowed)' : 'on',
    redis: tickets?.redisUrl === undefined ? 'off' : 'on'
  }, 'receiver settings')
  if (config.buckets === undefined && (tickets === undefined || tickets.allowCallbacksWithoutTicket)) {
    log.warn('callbacks for any bucket are accepted: OSS signs callbacks for every customer, so anyone can point an upload\'s callbackUrl here; set OSS_CALLBACK_BUCKETS or turn on upload tickets')
  }
}

/** The default handler of the standalone server. */
export const defaultHandler = (callback: VerifiedCallback): Record<string, unknown> => ({ Status: 'OK', ...callback.system })

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
    buckets: config.buckets,
    keys,
    nativeSignatureVerifier: deps.nativeSignatureVerifier
  })

  const durable = config.forwardUrl !== undefined && config.databaseUrl !== undefined && deps.handler === undefined
  const metrics = createServerMetrics({
    keys,
    verifierName: verifier.verifierName,
    forward: config.forwardUrl !== undefined && deps.handler === undefined && !durable,
    events: durable,
    reconcile: durable && config.reconcile !== undefined
  })
  const forwarder = config.forwardUrl === undefined || deps.handler !== undefined || durable
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
    requestTimeout: timeouts.requestTimeoutMs,
    connectionTimeout: timeouts.connectionTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    http: { connectionsCheckingInterval: timeouts.connectionsCheckingIntervalMs },
    clientErrorHandler: clientErrorHandler({ ...LINGER_DEFAULTS, ...deps.lingeringClose }),
    // Fastify's own 503 while closing has no code; the onRequest hook below answers a coded one (OSS itself
    // sends Connection: close, so only a client reusing a kept-alive connection meets it).
    return503OnClosing: false,
    bodyLimit: config.bodyLimitBytes
  })
  app.server.headersTimeout = timeouts.headersTimeoutMs
  // Node drops header lines past maxHeadersCount (default 2000) without a word, so a duplicate
  // authorization behind 2000 padding lines would escape the duplicate check; the 16 KiB header
  // limit still bounds how many lines a request can carry.
  app.server.maxHeadersCount = 0

  if (verifier.verifierName === 'node-forge') {
    app.log.warn('OpenSSL refused RSA-MD5 in the start-up self-test: verifying with node-forge instead')
  } else {
    app.log.info({ verifier: verifier.verifierName }, 'self-test passed')
  }
  const ticketConfig = config.tickets
  logAcceptance(app.log, config, keys.pinnedUrls, forwarder !== undefined || durable)
  let events: { store: EventStore, worker: DeliveryWorker } | undefined
  if (durable) {
    try {
      events = await startEvents(config, deps, app.log, metrics)
    } catch (err) {
      await app.close()
      throw err
    }
    const { store, worker } = events
    let stopReconcile: (() => Promise<void>) | undefined
    const reconcile = config.reconcile
    if (reconcile !== undefined) {
      const { startReconcileSchedule } = await import('../reconcile/schedule.js')
      try {
        stopReconcile = startReconcileSchedule({
          store,
          everyMs: reconcile.everyMs,
          windowMs: reconcile.windowMs,
          settleMs: reconcile.settleMs,
          ...(config.retentionMs === undefined ? {} : { retentionMs: config.retentionMs }),
          prefixes: reconcile.prefixes,
          bucket: reconcile.bucket,
          ...(reconcile.endpoint === undefined ? {} : { endpoint: reconcile.endpoint }),
          ...(reconcile.region === undefined ? {} : { region: reconcile.region }),
          credentials: reconcile.credentials,
          logger: app.log,
          onSweep: metrics.reconcileSwept,
          onError: metrics.reconcileFailed
        })
      } catch (err) {
        await app.close()
        await worker.close()
        await store.close()
        throw err
      }
      app.log.info({ bucket: reconcile.bucket, prefixes: reconcile.prefixes, everyMs: reconcile.everyMs }, 'reconciliation schedule on')
    }
    const retention = new AbortController()
    const sweep = (): void => {
      deleteExpiredEvents(store, { retentionMs: config.retentionMs ?? 7 * 86_400_000, now: deps.storeNow, signal: retention.signal })
        .then((n) => { if (n > 0) app.log.info({ deleted: n }, 'retention: expired events deleted') })
        .catch((err: unknown) => { app.log.warn({ err }, 'retention pass failed; the next one tries again') })
    }
    const retentionTimer = setInterval(sweep, deps.retentionIntervalMs ?? 600_000)
    retentionTimer.unref()
    app.addHook('onReady', async () => { worker.start(); sweep() })
    app.addHook('onClose', async () => {
      clearInterval(retentionTimer)
      retention.abort()
      // Its sweeps write to the store: stopped before the store closes.
      await stopReconcile?.()
      await worker.close()
      await store.close()
    })
  }
  let ticketStore: TicketStore | undefined
  let tickets: UploadTickets | undefined
  if (ticketConfig !== undefined) {
    ticketStore = deps.ticketStore ?? (ticketConfig.redisUrl !== undefined
      ? createRedisTicketStore({ ...deps.redisTicketStore, url: ticketConfig.redisUrl })
      : createMemoryTicketStore({ now: deps.now }))
    if (deps.ticketStore === undefined) {
      const owned = ticketStore
      app.addHook('onClose', async () => { await owned.close() })
    }
    tickets = createUploadTickets({ ...ticketConfig, store: ticketStore, ...(deps.now === undefined ? {} : { now: deps.now }) })
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
  // Callback style, not async: this runs for every callback and should cost no extra promise.
  app.addHook('onRequest', (request, reply, done) => {
    // A request that reaches a kept-alive connection after shutdown began; in-flight ones are past this hook.
    if (closing) { sendError(reply.header('connection', 'close'), ossError('NOT_READY', 'shutting down')); return }
    // Answer unknown paths before any body is read or parsed: nothing of a stranger's body is worth a parser's time.
    if (request.is404) {
      if (GET_PATHS.has(pathOf(request.url))) {
        sendError(reply.header('allow', 'GET, HEAD'), ossError('METHOD_NOT_ALLOWED', 'this path takes GET or HEAD only'))
      } else {
        sendError(reply, ossError('NOT_FOUND', 'no such route'))
      }
      return
    }
    done()
  })
  if (forwarder !== undefined) app.addHook('onClose', async () => forwarder.close())

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.scrape()
    return reply.header('content-type', metrics.contentType).send(text)
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    if (!ready || closing) return sendError(reply, ossError('NOT_READY', closing ? 'shutting down' : 'starting'))
    if (ticketStore?.isReady?.() === false) return sendError(reply, ossError('NOT_READY', 'ticket store not connected or not answering'))
    if (events !== undefined && !await probeStore(events.store, deps.storeProbeTimeoutMs ?? 2000)) {
      return sendError(reply, ossError('NOT_READY', 'event store cannot be written'))
    }
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
    ...(deps.lingeringClose === undefined ? {} : { lingeringClose: deps.lingeringClose }),
    handler: deps.handler ?? forwarder?.handler ?? (events === undefined ? defaultHandler : gatewayHandler(config, deps, events, tickets, app.log)),
    onSuccess: metrics.callbackSucceeded,
    onFailure: (error) => metrics.callbackFailed(error),
    onVerification: metrics.verificationObserved,
    diagnostics: {
      captureDir: config.captureDir,
      captureMax: config.captureMax,
      onCaptureError: (err) => { app.log.warn({ err }, 'refused callback not captured') }
    },
    // The gateway consumes the ticket itself, after the event is committed (a failed commit never spends one).
    ...(tickets === undefined || events !== undefined ? {} : { preHandler: tickets.bindCallback })
  })
  if (tickets !== undefined && ticketConfig !== undefined) {
    await app.register(ticketRoutes, {
      tickets,
      path: ticketConfig.path,
      authorize: bearerAuthorizer(ticketConfig.token),
      ...(deps.lingeringClose === undefined ? {} : { lingeringClose: deps.lingeringClose })
    })
  }
  return app
}

/** Opens the event log and creates the delivery worker (not started). */
async function startEvents (config: ServerConfig, deps: AppDependencies, log: FastifyBaseLogger,
  metrics: ReturnType<typeof createServerMetrics>): Promise<{ store: EventStore, worker: DeliveryWorker }> {
  const open = deps.openEventStore ?? openEventStore
  const store = await open(config.databaseUrl as string, {
    ...(deps.storeNow === undefined ? {} : { now: deps.storeNow }),
    onCommit: metrics.storeCommitted
  })
  try {
    const worker = createDeliveryWorker({
      retryScheduleMs: config.retryScheduleMs,
      retryForMs: config.retryForMs,
      concurrency: config.deliveryConcurrency,
      ...deps.delivery,
      store,
      url: config.forwardUrl as string,
      secret: config.forwardSecret ?? '',
      onAttempt: metrics.deliveryAttempted,
      onError: (err) => { log.warn({ err }, 'event store failed under the delivery worker; retrying') }
    })
    metrics.watchEvents(store)
    log.info({ store: store.dialect, onUpstreamFailure: config.onUpstreamFailure ?? 'refuse' }, 'event log open: callbacks are recorded before they are answered')
    return { store, worker }
  } catch (err) {
    await store.close()
    throw err
  }
}

function gatewayHandler (config: ServerConfig, deps: AppDependencies, events: { store: EventStore, worker: DeliveryWorker },
  tickets: UploadTickets | undefined, log: FastifyBaseLogger): CallbackHandler {
  return createGatewayHandler({
    store: events.store,
    worker: events.worker,
    onUpstreamFailure: config.onUpstreamFailure,
    noContentReply: defaultHandler,
    ...(tickets === undefined ? {} : { bindTicket: async (callback, deadlineAt) => (await tickets.bindCallback(callback, { deadlineAt })).ticket }),
    ...(deps.storeNow === undefined ? {} : { now: deps.storeNow }),
    onStoreError: (err) => { log.warn({ err }, 'event outcome not recorded; the event stays pending and is retried') }
  })
}

async function probeStore (store: EventStore, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs) })
  try {
    return await Promise.race([store.probe().then(() => true, () => false), expired])
  } finally {
    clearTimeout(timer)
  }
}
