import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { performance } from 'node:perf_hooks'
import { createDiagnostics, type Diagnostics, type DiagnosticsOptions, type RefusedRequest } from '../diagnose/explain.js'
import { invalidOption, isOssCallbackError, ossError, type OssCallbackError } from '../errors.js'
import { FORM_CONTENT_TYPE, JSON_CONTENT_TYPE } from '../protocol/body.js'
import { LINGER_DEFAULTS, lingerAfterReply, type LingerOptions } from './lingering-close.js'
import { DEFAULT_REPLY, errorReplyOf, replyBytes } from './reply.js'
import { createCallbackVerifier, type CallbackVerifier, type CallbackVerifierOptions, type VerifiedCallback } from './verify.js'
import { wholeNumberOption } from '../options.js'

export { errorReplyOf, MAX_REPLY_BYTES, RawJsonReply } from './reply.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified callback, set by the oss-callback plugin on its route before the handler runs. */
    ossCallback: VerifiedCallback | null
  }
}

/** What the {@link OssCallbackPluginOptions.preHandler} hook gets besides the callback. */
export interface PreHandlerContext {
  /** The Fastify request. */
  request: FastifyRequest
  /** Aborted when the callback's deadline passes: pass it to database calls and fetches. */
  signal: AbortSignal
  /** Milliseconds left before the deadline, when the hook or handler was called. */
  remainingMs: number
  /** When the callback arrived, in ms since the epoch. */
  receivedAt: number
  /** The callback's deadline, in ms since the epoch (wall clock): `receivedAt` plus the plugin's `deadlineMs`. */
  deadlineAt: number
}

/**
 * What a handler gets besides the callback: the same fields as the hook, plus the fields of the object the
 * {@link OssCallbackPluginOptions.preHandler} hook returned (`Extra`), such as `ticket` with upload tickets.
 */
export type CallbackContext<Extra extends object = object> = PreHandlerContext & Extra

/**
 * Runs after a callback is verified (signature, body, bucket list) and before the handler, inside the
 * callback's deadline: the place for a check of the app's own (an upload ticket, an intent the app
 * recorded). A thrown registry error is answered with its code (anything else thrown becomes
 * `OSS_CB_ERR_HANDLER_FAILED`); a hook still running at the deadline gets 504 `OSS_CB_ERR_DEADLINE_EXCEEDED`.
 * The fields of the object it returns are added to the handler's context; `undefined` adds none.
 * It never runs for a refused callback.
 */
export type PreHandlerHook<Extra extends object = object> =
  (callback: VerifiedCallback, context: PreHandlerContext) => Extra | undefined | Promise<Extra | undefined>

/**
 * Handles one verified callback. Its return value is sent to OSS as JSON, and OSS
 * relays it to the uploader. `undefined` sends `{"Status":"OK"}`; a {@link RawJsonReply}
 * is sent byte for byte. A thrown registry error (such as `OSS_CB_ERR_FORWARD_FAILED`)
 * is answered with its own code; anything else thrown becomes `OSS_CB_ERR_HANDLER_FAILED`.
 */
export type CallbackHandler<Extra extends object = object> = (callback: VerifiedCallback, context: CallbackContext<Extra>) => unknown

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
   * Runs after verification and before the handler, inside the deadline; may refuse the callback with a
   * coded error, and what it returns reaches the handler's context. Upload tickets plug in here
   * (`preHandler: tickets.bindCallback`, see `oss-callback/tickets`). Default: none.
   */
  preHandler?: PreHandlerHook
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
export function refusedRequestOf (request: FastifyRequest): RefusedRequest {
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

function handlerFailure (err: unknown, name: string): OssCallbackError {
  if (isOssCallbackError(err)) return err
  return ossError('HANDLER_FAILED', `${name} threw`, err)
}

/** Fields of the handler's context that a hook's returned object may not replace. */
const CONTEXT_FIELDS = new Set(['request', 'signal', 'remainingMs', 'receivedAt', 'deadlineAt'])

/** The object a preHandler hook returned, checked: its fields go into the handler's context. */
function hookExtra (value: unknown): object | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw ossError('HANDLER_FAILED', 'preHandler returned neither an object nor undefined')
  const clash = Object.keys(value).find((key) => CONTEXT_FIELDS.has(key))
  if (clash !== undefined) throw ossError('HANDLER_FAILED', `preHandler returned the reserved context field ${clash}`)
  return value
}

/** One callback's deadline, shared by its preHandler hook and its handler. */
interface Deadline {
  /** Wall clock, epoch ms. */
  receivedAt: number
  deadlineAt: number
  /** Milliseconds left now. */
  left: () => number
  controller?: AbortController
  expiredWith?: OssCallbackError
}

/**
 * Runs the app's code for one callback (the preHandler hook, then the handler) within the deadline. A thrown
 * registry error keeps its code; anything else becomes `OSS_CB_ERR_HANDLER_FAILED`; still running at the
 * deadline, `OSS_CB_ERR_DEADLINE_EXCEEDED`, and the signal aborts.
 */
async function runStep (
  name: 'preHandler' | 'handler', step: (callback: VerifiedCallback, context: CallbackContext) => unknown, callback: VerifiedCallback,
  request: FastifyRequest, deadline: Deadline, extra: object | undefined
): Promise<unknown> {
  const remainingMs = deadline.left()
  if (remainingMs <= 0) throw ossError('DEADLINE_EXCEEDED', `deadline passed before the ${name} ran`)
  // A controller and a timer per callback cost about 6 µs, more than half an RSA-512 verify, and most
  // handlers are synchronous or never read the signal: create the signal on first use and arm the
  // deadline only once the handler has returned a promise.
  const base: PreHandlerContext = {
    request,
    get signal (): AbortSignal {
      if (deadline.controller === undefined) {
        deadline.controller = new AbortController()
        if (deadline.expiredWith !== undefined) deadline.controller.abort(deadline.expiredWith)
      }
      return deadline.controller.signal
    },
    remainingMs,
    receivedAt: deadline.receivedAt,
    deadlineAt: deadline.deadlineAt
  }
  const context: CallbackContext = extra === undefined ? base : Object.defineProperties(base, Object.getOwnPropertyDescriptors(extra))
  let result: unknown
  try {
    result = step(callback, context)
  } catch (err) {
    throw handlerFailure(err, name)
  }
  if (!(result instanceof Promise)) return result
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      deadline.expiredWith = ossError('DEADLINE_EXCEEDED', `${name} did not finish before the deadline`)
      deadline.controller?.abort(deadline.expiredWith)
      reject(deadline.expiredWith)
    }, Math.max(0, deadline.left()))
  })
  try {
    return await Promise.race([result, expired])
  } catch (err) {
    throw handlerFailure(err, name)
  } finally {
    clearTimeout(timer)
    // A rejected `expired` nobody awaits must not become an unhandled rejection.
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
  const deadlineMs = wholeNumberOption('deadlineMs', options.deadlineMs, 4500, { max: 60_000 })
  const bodyLimit = wholeNumberOption('bodyLimitBytes', options.bodyLimitBytes, 64 * 1024, { max: 64 * 1024 * 1024 })
  const verifier = options.verifier ?? createCallbackVerifier(options)
  const linger: LingerOptions = {
    maxBytes: wholeNumberOption('lingeringClose.maxBytes', options.lingeringClose?.maxBytes, LINGER_DEFAULTS.maxBytes),
    maxMs: wholeNumberOption('lingeringClose.maxMs', options.lingeringClose?.maxMs, LINGER_DEFAULTS.maxMs, { max: 60_000 })
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
  const preHandler = options.preHandler
  if (preHandler !== undefined && typeof preHandler !== 'function') throw invalidOption('preHandler must be a function')

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

  // When each callback arrived (performance clock), taken before its body is read. Fastify's own
  // reply.elapsedTime stays 0 in an app without a logger or onResponse hook, so it cannot measure this.
  const arrivals = new WeakMap<FastifyRequest, number>()
  const elapsedMs = (request: FastifyRequest): number => performance.now() - (arrivals.get(request) ?? performance.now())

  fastify.route({
    method: 'POST',
    url: path,
    onRequest: (request, _reply, done) => { arrivals.set(request, performance.now()); done() },
    handler: callbackRoute
  })

  async function callbackRoute (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const timeoutMs = deadlineMs - elapsedMs(request)
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
    let payload: Buffer = DEFAULT_REPLY
    if (preHandler !== undefined || handler !== undefined) {
      const elapsed = elapsedMs(request)
      if (deadlineMs - elapsed <= 0) throw ossError('DEADLINE_EXCEEDED', 'deadline passed during verification')
      const receivedAt = Date.now() - elapsed
      const deadline: Deadline = { receivedAt, deadlineAt: receivedAt + deadlineMs, left: () => deadlineMs - elapsedMs(request) }
      const extra = preHandler === undefined ? undefined : hookExtra(await runStep('preHandler', preHandler, callback, request, deadline, undefined))
      if (handler !== undefined) payload = replyBytes(await runStep('handler', handler, callback, request, deadline, extra))
    }
    request.log.debug({ ossRequestId: headerForLog(callback.requestId), keySource: callback.keySource }, 'callback verified')
    if (onSuccess !== undefined) onSuccess(callback, request)
    return reply.code(200).header('content-type', 'application/json').header('content-length', payload.length).send(payload)
  }
}
