import type { IncomingMessage, ServerResponse } from 'node:http'
import { isOssCallbackError, ossError, type OssCallbackError } from '../errors.js'
import { errorReplyOf, replyBytes } from '../receiver/reply.js'
import { createCallbackVerifier, type CallbackVerifier, type CallbackVerifierOptions, type VerifiedCallback } from '../receiver/verify.js'
import { bodyLimitOption, DEFAULT_DEADLINE_MS } from './options.js'
import { wholeNumberOption } from '../options.js'
import { bodyAlreadyRead, readNodeBody } from './read-body.js'

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified callback, set by oss-callback's middleware before the next handler runs. */
      ossCallback?: VerifiedCallback
    }
  }
}

/** Options of the Express middleware {@link ossCallback}. */
export interface ExpressCallbackOptions extends CallbackVerifierOptions {
  /** A verifier to share (its options then come from it). Default: one built from these options. */
  verifier?: CallbackVerifier
  /** Largest callback body accepted, in bytes. Default: 65536. */
  bodyLimitBytes?: number
  /** Time from the callback's arrival to the end of its verification (key fetch included), in ms. Default: 4500. */
  deadlineMs?: number
  /** Called for every callback refused, after its coded reply is chosen: log or count it here. Must not throw. */
  onFailure?: (error: OssCallbackError, req: IncomingMessage) => void
}

/** A Node request once the middleware has verified it. */
export type VerifiedRequest = IncomingMessage & { ossCallback: VerifiedCallback }

/** Express's middleware signature, without a dependency on Express's types. */
export type CallbackMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void

function toCoded (err: unknown): OssCallbackError {
  return isOssCallbackError(err) ? err : ossError('INTERNAL', 'unexpected error', err)
}

/** Answers a refusal with the same coded JSON as the server: `{statusCode, code, error, message}`. */
export function sendCallbackError (res: ServerResponse, error: unknown): void {
  const err = toCoded(error)
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = Buffer.from(JSON.stringify(errorReplyOf(err)))
  res.statusCode = err.statusCode
  res.setHeader('content-type', 'application/json; charset=utf-8')
  res.setHeader('content-length', body.length)
  // Unread bytes of a refused body are not drained: the connection closes after the reply.
  if (err.code === 'OSS_CB_ERR_BODY_TOO_LARGE') res.setHeader('connection', 'close')
  res.end(body)
}

/**
 * Answers OSS under its rules: 200, JSON, an exact `Content-Length`, at most 1 MB.
 * `undefined` sends `{"Status":"OK"}`. A value that cannot be sent (not JSON-serialisable,
 * over 1 MB) is answered with the coded `500 OSS_CB_ERR_REPLY_INVALID` instead.
 */
export function sendCallbackReply (res: ServerResponse, value?: unknown): void {
  let body: Buffer
  try {
    body = replyBytes(value)
  } catch (err) {
    sendCallbackError(res, err)
    return
  }
  res.statusCode = 200
  res.setHeader('content-type', 'application/json')
  res.setHeader('content-length', body.length)
  res.end(body)
}

/**
 * Middleware for Express 4 and 5 (or any `(req, res, next)` stack) that reads the raw
 * body itself, verifies it, sets `req.ossCallback` and calls `next()`. A refusal is
 * answered with its coded JSON and `next` is not called.
 *
 * ```ts
 * app.post('/oss/callback', ossCallback(), (req, res) => {
 *   sendCallbackReply(res, { ok: true, key: req.ossCallback?.system.object })
 * })
 * ```
 */
export function ossCallback (options: ExpressCallbackOptions = {}): CallbackMiddleware {
  const bodyLimit = bodyLimitOption(options.bodyLimitBytes)
  const deadlineMs = wholeNumberOption('deadlineMs', options.deadlineMs, DEFAULT_DEADLINE_MS, { max: 60_000 })
  const verifier = options.verifier ?? createCallbackVerifier(options)
  const onFailure = options.onFailure

  async function handle (req: IncomingMessage): Promise<VerifiedCallback> {
    const started = performance.now()
    if (req.method !== 'POST') throw ossError('METHOD_NOT_ALLOWED', 'callback path takes POST only')
    if (bodyAlreadyRead(req)) throw ossError('BODY_ALREADY_READ', 'a body parser ran before the middleware')
    const body = await readNodeBody(req, bodyLimit)
    const timeoutMs = deadlineMs - (performance.now() - started)
    if (timeoutMs <= 0) throw ossError('DEADLINE_EXCEEDED', 'deadline passed while the body arrived')
    // Express rewrites req.url under a mounted router; originalUrl is the target as received.
    const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? ''
    return await verifier.verify({ url, headers: req.headers, rawHeaders: req.rawHeaders, body }, { timeoutMs })
  }

  return (req, res, next) => {
    handle(req).then((callback) => {
      (req as VerifiedRequest).ossCallback = callback
      next()
    }, (error: unknown) => {
      const err = toCoded(error)
      if (onFailure !== undefined) onFailure(err, req)
      sendCallbackError(res, err)
    })
  }
}
