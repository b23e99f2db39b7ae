import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { performance } from 'node:perf_hooks'
import { createDiagnostics, type Diagnostics, type DiagnosticsOptions, type RefusedRequest } from '../diagnose/explain.js'
import { invalidOption, isOssCallbackError, ossError, type OssCallbackError } from '../errors.js'
import { FORM_CONTENT_TYPE, JSON_CONTENT_TYPE } from '../protocol/body.js'
import { createUploadTickets, type UploadTicketsOptions } from '../tickets/issuer.js'
import { ticketRoute, type TicketAuthorizer } from '../tickets/route.js'
import type { UploadTicket } from '../tickets/store.js'
import { LINGER_DEFAULTS, lingerAfterReply, type LingerOptions } from './lingering-close.js'
import { DEFAULT_REPLY, errorReplyOf, replyBytes } from './reply.js'
import { createCallbackVerifier, type CallbackVerifier, type CallbackVerifierOptions, type VerifiedCallback } from './verify.js'

export { errorReplyOf, MAX_REPLY_BYTES, RawJsonReply } from './reply.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified callback, set by the oss-callback plugin on its route before the handler runs. */
    ossCallback: VerifiedCallback | null
  }
}

/** What a handler gets besides the callback. */
export interface CallbackContext {
  /** The Fastify request. */
  request: FastifyRequest
  /** Aborted when the callback's deadline passes: pass it to database calls and fetches. */
  signal: AbortSignal
  /** Milliseconds left before the deadline, when the handler was called. */
  remainingMs: number
  /** When the callback arrived, in ms since the epoch. */
  receivedAt: number
  /** With tickets on: the ticket this callback consumed (who asked, when). Absent for an allowed ticket-less callback. */
  ticket?: UploadTicket
}

/** Upload tickets in the plugin: the ticket endpoint, and callbacks bound to tickets. */
export interface PluginTicketOptions extends UploadTicketsOptions {
  /** Path of the ticket endpoint. Default `/oss/upload-tickets`. */
  path?: string
  /** The app's own check of who may get a ticket (a session, an API key). Required. */
  authorize: TicketAuthorizer
  /**
   * Consume each callback's ticket before the handler runs. Default true. The standalone server's
   * durable gateway sets false and consumes the ticket itself, after the event is committed.
   */
  bindCallbacks?: boolean
}

/**
 * Handles one verified callback. Its return value is sent to OSS as JSON, and OSS
 * relays it to the uploader. `undefined` sends `{"Status":"OK"}`; a {@link RawJsonReply}
 * is sent byte for byte. A thrown registry error (such as `OSS_CB_ERR_FORWARD_FAILED`)
 * is answered with its own code; anything else thrown becomes `OSS_CB_ERR_HANDLER_FAILED`.
 */
export type CallbackHandler = (callback: VerifiedCallback, context: CallbackContext) => unknown

/** Options of the oss-callback Fastify plugin. */
export interface OssCallbackPluginOptions extends CallbackVerifierOptions {
  /** Route path OSS posts to. Default: `/oss/callback`. */
  path?: string
  /** Handles verified callbacks. Default: answers `{"Status":"OK"}`. */
  handler?: CallbackHandler
  /** Time from a callback's arrival to its reply, in ms; OSS gives up at 5000. Default: 4500. */
  deadlineMs?: number
  /** Largest callback body accepted, in bytes. Default: 65536. */
  bodyLimitBytes?: number
  /** A verifier to share (its options then come from it). Default: one built from these options. */
  verifier?: CallbackVerifier
  /**
   * Called for every callback refused or failed, after the error reply is chosen.
   * Useful for metrics. Must not throw.
   */
  onFailure?: (error: OssCallbackError, request: FastifyRequest) => void
  /** Called for every callback answered 200, just before the reply is sent. Useful for metrics. Must not throw. */
  onSuccess?: (callback: VerifiedCallback, request: FastifyRequest) => void
  /** Called after every verification, passed or failed, with its duration in seconds. Useful for metrics. Must not throw. */
  onVerification?: (seconds: number) => void
  /**
   * Turns upload tickets on: `POST <tickets.path>` issues PostObject forms with the
   * callback pinned, and every callback must then consume an unused ticket
   * (replay: 409 `OSS_CB_ERR_TICKET_USED`). Default: off.
   */
  tickets?: PluginTicketOptions
  /**
   * @internal Bounds of the lingering close after a refusal that leaves the body unread (413): what the
   * client still sends is read and discarded up to these, so that it reads the reply instead of a reset.
   * Default {@link LINGER_DEFAULTS}; tests use short ones.
   */
  lingeringClose?: Partial<LingerOptions>
  /**
   * Explains refusals in the `warn` line's `hint` (and on `error.hint`; never in the answer), and keeps
   * captures when `captureDir` is set: see docs/refused-callbacks.md. Options for diagnostics sharing this
   * plugin's verifier, or diagnostics made with `createDiagnostics`. `false` turns them off. Default: on, no captures.
   */
  diagnostics?: Diagnostics | Omit<DiagnosticsOptions, 'keys' | 'policy' | 'publicPath' | 'bodyLimitBytes'> | false
}

const MAX_LOGGED_HEADER_CHARS = 128

/**
 * A request header's value as it may go into a log: unsigned input of up to 16 KiB, so it is cut to
 * {@link MAX_LOGGED_HEADER_CHARS} characters and marked when cut, and a log line stays small.
 */
export function headerForLog (value: string | readonly string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  const text = typeof value === 'string' ? value : value.join(', ')
  return text.length <= MAX_LOGGED_HEADER_CHARS ? text : `${text.slice(0, MAX_LOGGED_HEADER_CHARS)}…[cut]`
}

function checkPositive (name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw invalidOption(`${name} must be a whole number from 1 to ${max}, got ${String(value)}`)
  }
  return value
}

/** Maps Fastify's own body errors into the registry; anything unknown becomes `OSS_CB_ERR_INTERNAL`. */
export function toOssError (err: FastifyError | Error): OssCallbackError {
  if (isOssCallbackError(err)) return err
  switch ((err as FastifyError).code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return ossError('BODY_TOO_LARGE', 'body over the limit')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
    case 'FST_ERR_CTP_EMPTY_TYPE': return ossError('UNSUPPORTED_MEDIA_TYPE', 'content type is not form or JSON')
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH': return ossError('BAD_REQUEST', 'content-length does not match the body')
  }
  const status = (err as FastifyError).statusCode
  if (status === 408 || (err as NodeJS.ErrnoException).code === 'ECONNRESET') return ossError('BAD_REQUEST', 'request aborted', err)
  if (typeof status === 'number' && status >= 400 && status < 500) return ossError('BAD_REQUEST', 'malformed request', err)
  return ossError('INTERNAL', 'unexpected error', err)
}

/** The request as a refusal's diagnosis needs it. */
function refusedRequestOf (request: FastifyRequest): RefusedRequest {
  return {
    method: request.method,
    url: request.url,
    headers: request.headers,
    rawHeaders: request.raw.rawHeaders,
    body: Buffer.isBuffer(request.body) ? request.body : undefined,
    httpVersion: request.raw.httpVersion
  }
}

/** Sends a coded error as `{statusCode, code, error, message}`. */
export function sendError (reply: FastifyReply, err: OssCallbackError): FastifyReply {
  const body = Buffer.from(JSON.stringify(errorReplyOf(err)))
  return reply.code(err.statusCode).header('content-type', 'application/json; charset=utf-8').header('content-length', body.length).send(body)
}

function handlerFailure (err: unknown): OssCallbackError {
  if (isOssCallbackError(err)) return err
  return ossError('HANDLER_FAILED', 'handler threw', err)
}

async function runHandler (
  handler: CallbackHandler, callback: VerifiedCallback, request: FastifyRequest, remainingMs: number, receivedAt: number,
  ticket: UploadTicket | undefined
): Promise<unknown> {
  // A controller and a timer per callback cost about 6 µs, more than half an RSA-512 verify, and most
  // handlers are synchronous or never read the signal: create the signal on first use and arm the
  // deadline only once the handler has returned a promise.
  let controller: AbortController | undefined
  let expiredWith: OssCallbackError | undefined
  const context: CallbackContext = {
    request,
    get signal (): AbortSignal {
      if (controller === undefined) {
        controller = new AbortController()
        if (expiredWith !== undefined) controller.abort(expiredWith)
      }
      return controller.signal
    },
    remainingMs,
    receivedAt
  }
  if (ticket !== undefined) context.ticket = ticket
  const calledAt = performance.now()
  let result: unknown
  try {
    result = handler(callback, context)
  } catch (err) {
    throw handlerFailure(err)
  }
  if (!(result instanceof Promise)) return result
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      expiredWith = ossError('DEADLINE_EXCEEDED', 'handler did not finish before the deadline')
      controller?.abort(expiredWith)
      reject(expiredWith)
    }, Math.max(0, remainingMs - (performance.now() - calledAt)))
  })
  try {
    return await Promise.race([result, expired])
  } catch (err) {
    throw handlerFailure(err)
  } finally {
    clearTimeout(timer)
    // A rejected `expired` nobody awaits must not become an unhandled rejection.
    expired.catch(() => {})
  }
}

async function withDeadline<T> (work: Promise<T>, remainingMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(ossError('DEADLINE_EXCEEDED', 'ticket store did not answer before the deadline')) }, remainingMs)
  })
  try {
    return await Promise.race([work, expired])
  } finally {
    clearTimeout(timer)
    expired.catch(() => {})
  }
}

/**
 * The oss-callback Fastify plugin. Register it without `fastify-plugin`: its
 * raw-body content-type parsers, body limit and error handler stay inside it and
 * do not change how the host app parses its own routes.
 *
 * ```ts
 * app.register(ossCallback, { path: '/oss/callback', handler: async (cb) => ({ ok: true, key: cb.system.object }) })
 * ```
 */
export async function ossCallback (fastify: FastifyInstance, options: OssCallbackPluginOptions): Promise<void> {
  const path = options.path ?? '/oss/callback'
  if (!path.startsWith('/')) throw invalidOption(`path must start with /, got ${JSON.stringify(path)}`)
  const deadlineMs = checkPositive('deadlineMs', options.deadlineMs, 4500, 60_000)
  const bodyLimit = checkPositive('bodyLimitBytes', options.bodyLimitBytes, 64 * 1024, 64 * 1024 * 1024)
  const verifier = options.verifier ?? createCallbackVerifier(options)
  const linger: LingerOptions = {
    maxBytes: checkPositive('lingeringClose.maxBytes', options.lingeringClose?.maxBytes, LINGER_DEFAULTS.maxBytes),
    maxMs: checkPositive('lingeringClose.maxMs', options.lingeringClose?.maxMs, LINGER_DEFAULTS.maxMs, 60_000)
  }
  const handler = options.handler
  const onFailure = options.onFailure
  const onSuccess = options.onSuccess
  const onVerification = options.onVerification
  const given = options.diagnostics
  const diagnostics = given === false
    ? undefined
    : given !== undefined && 'onRefusal' in given
      ? given
      : createDiagnostics({
        signatureVerifier: options.signatureVerifier,
        ...given,
        keys: verifier.keys,
        policy: verifier.policy,
        publicPath: verifier.publicPath,
        bodyLimitBytes: bodyLimit
      })
  const ticketOptions = options.tickets
  const tickets = ticketOptions === undefined ? undefined : createUploadTickets(ticketOptions)
  const ticketPath = ticketOptions?.path ?? '/oss/upload-tickets'
  if (tickets !== undefined) {
    if (!ticketPath.startsWith('/') || ticketPath === path) throw invalidOption('tickets.path must start with / and differ from the callback path')
    if (typeof ticketOptions?.authorize !== 'function') throw invalidOption('tickets.authorize is required: it decides who may get a ticket')
    // The default memory store is ours to close; an injected store belongs to the caller.
    if (ticketOptions?.store === undefined) fastify.addHook('onClose', async () => { await tickets.store.close() })
  }

  if (diagnostics?.captures !== undefined) fastify.addHook('onClose', async () => { await diagnostics.flush() })

  fastify.decorateRequest('ossCallback', null)
  fastify.removeAllContentTypeParsers()
  // Keep the bytes: the signature covers the body exactly as sent.
  fastify.addContentTypeParser([FORM_CONTENT_TYPE, JSON_CONTENT_TYPE], { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    done(null, body)
  })

  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const err = toOssError(error)
    // Fastify marks a refusal that left the body unread (413) to close the connection.
    if (reply.getHeader('connection') === 'close') lingerAfterReply(request.raw.socket, linger, request.raw)
    if (tickets !== undefined && request.routeOptions.url === ticketPath) {
      if (err.statusCode >= 500) request.log.error({ code: err.code, reason: err.reason, err: err.cause ?? error }, 'ticket request failed')
      else request.log.warn({ code: err.code, reason: err.reason }, 'ticket request refused')
      return sendError(reply, err)
    }
    if (err.statusCode >= 500) {
      request.log.error({ code: err.code, reason: err.reason, err: err.cause ?? error, ossRequestId: headerForLog(request.headers['x-oss-request-id']) }, 'callback failed')
    } else {
      const hint = diagnostics?.onRefusal(err, refusedRequestOf(request))
      request.log.warn({ code: err.code, reason: err.reason, hint, ossRequestId: headerForLog(request.headers['x-oss-request-id']) }, 'callback refused')
    }
    if (onFailure !== undefined) onFailure(err, request)
    return sendError(reply, err)
  })

  fastify.route({
    method: ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
    url: path,
    // Refused in onRequest, before the body parser could answer 415 or 413 instead of 405.
    onRequest: async (_request, reply) => { reply.header('allow', 'POST'); throw ossError('METHOD_NOT_ALLOWED', 'callback path takes POST only') },
    handler: async (_request, reply) => { reply.header('allow', 'POST'); throw ossError('METHOD_NOT_ALLOWED', 'callback path takes POST only') }
  })

  fastify.post(path, async (request, reply) => {
    const timeoutMs = deadlineMs - reply.elapsedTime
    if (timeoutMs <= 0) throw ossError('DEADLINE_EXCEEDED', 'deadline passed while the body arrived')
    // Node drops header lines past the server's maxHeadersCount without a word (unset, its parser keeps
    // 2000 raw entries, about 1000 lines): a duplicate authorization behind them would escape the
    // duplicate check, so refuse at the cap. 0 means no cap (the standalone server's setting).
    const maxHeaders = fastify.server.maxHeadersCount
    const maxRawEntries = typeof maxHeaders === 'number' ? maxHeaders * 2 : 2000
    if (maxRawEntries > 0 && request.raw.rawHeaders.length >= maxRawEntries) throw ossError('HEADERS_TOO_LARGE', 'header lines reached the server\'s maxHeadersCount')
    const verifyStarted = onVerification === undefined ? 0 : performance.now()
    let callback: VerifiedCallback
    try {
      callback = await verifier.verify({
        url: request.url,
        headers: request.headers,
        rawHeaders: request.raw.rawHeaders,
        body: (request.body as Buffer | undefined) ?? Buffer.alloc(0)
      }, { timeoutMs })
    } finally {
      if (onVerification !== undefined) onVerification((performance.now() - verifyStarted) / 1000)
    }
    request.ossCallback = callback
    let ticket: UploadTicket | undefined
    if (tickets !== undefined && ticketOptions?.bindCallbacks !== false) {
      const left = deadlineMs - reply.elapsedTime
      if (left <= 0) throw ossError('DEADLINE_EXCEEDED', 'deadline passed during verification')
      ticket = await withDeadline(tickets.bind(callback, { deadlineAt: Date.now() + left }), left)
    }
    let payload: Buffer = DEFAULT_REPLY
    if (handler !== undefined) {
      const left = deadlineMs - reply.elapsedTime
      if (left <= 0) throw ossError('DEADLINE_EXCEEDED', 'deadline passed during verification')
      payload = replyBytes(await runHandler(handler, callback, request, left, Date.now() - reply.elapsedTime, ticket))
    }
    request.log.debug({ ossRequestId: headerForLog(callback.requestId), keySource: callback.keySource }, 'callback verified')
    if (onSuccess !== undefined) onSuccess(callback, request)
    return reply.code(200).header('content-type', 'application/json').header('content-length', payload.length).send(payload)
  })

  if (tickets !== undefined && ticketOptions !== undefined) {
    await fastify.register(ticketRoute, { path: ticketPath, tickets, authorize: ticketOptions.authorize })
  }
}
