import { randomUUID } from 'node:crypto'
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { performance } from 'node:perf_hooks'
import { createSigner } from '../delivery/sign.js'
import { invalidOption, isOssCallbackError, ossError, type OssCallbackError, type OssCallbackErrorName } from '../errors.js'
import { decodeStrictBase64 } from '../protocol/base64.js'
import type { CallbackBodyType, CallbackSystemFields } from '../protocol/body.js'
import type { KeySource } from '../keys/provider.js'
import { MAX_REPLY_BYTES, RawJsonReply, type CallbackContext, type CallbackHandler } from '../receiver/plugin.js'
import type { VerifiedCallback } from '../receiver/verify.js'
import { wholeNumberOption } from '../options.js'

/** The `type` of every envelope forward mode sends. */
export const FORWARD_EVENT_TYPE = 'oss.callback.verified'

/**
 * The JSON body forward mode POSTs to the upstream app, following the Standard
 * Webhooks payload shape (`type`, `timestamp`, `data`).
 */
export interface ForwardEnvelope {
  type: typeof FORWARD_EVENT_TYPE
  /** When the receiver got the callback from OSS, ISO 8601 in UTC. */
  timestamp: string
  data: {
    /** `x-oss-request-id` as OSS sent it (not signed by OSS), or null. */
    ossRequestId: string | null
    /** The public key URL whose key verified the signature. */
    keyUrl: string
    /** Where that key came from: `pinned`, `cache` or `fetch`. */
    keySource: KeySource
    /** The path OSS signed, still percent-encoded. */
    path: string
    /** The raw query OSS signed, without `?`; `''` when none. */
    query: string
    /** `form` (urlencoded) or `json`: the callback's body type. */
    bodyType: CallbackBodyType
    /** The system variables, typed (`size` a number; empty fields left out). */
    system: CallbackSystemFields
    /** The `x:` custom variables, keys with their prefix. */
    vars: Record<string, string>
    /** Every top-level body field as sent. */
    fields: Record<string, unknown>
    /** The verified body bytes exactly as OSS sent them, standard base64. */
    rawBodyBase64: string
  }
}

/** How one forward ended, for metrics. */
export type ForwardOutcome =
  | 'ok' | 'no_content' | 'bad_status' | 'bad_reply' | 'too_large' | 'unreachable' | 'timeout' | 'deadline'

/** Every {@link ForwardOutcome}, for pre-declaring metric labels. */
export const FORWARD_OUTCOMES: readonly ForwardOutcome[] = Object.freeze(
  ['ok', 'no_content', 'bad_status', 'bad_reply', 'too_large', 'unreachable', 'timeout', 'deadline'] as const)

/** Options of {@link createForwarder}. */
export interface ForwarderOptions {
  /** The upstream app's URL, `http:` or `https:`, no user info. */
  url: string
  /** Standard Webhooks secret, `whsec_` + base64 of 24 to 64 random bytes. */
  secret: string
  /** One forward, in ms; never beyond the callback's time left. Default: 3500. */
  timeoutMs?: number
  /** Open connections to the upstream at most (the pool keeps them alive). Default: 64. */
  maxSockets?: number
  /** The reply when the upstream answers 204. Default: the plugin's `{"Status":"OK"}`. */
  noContentReply?: (callback: VerifiedCallback) => unknown
  /** Clock for `webhook-timestamp`, ms since the epoch. Default: `Date.now`. */
  now?: () => number
  /** Makes each `webhook-id`. Default: `msg_` + a random UUID. */
  messageId?: () => string
  /** Called once per forward with how it ended and how long it took, in seconds. Must not throw. */
  onOutcome?: (outcome: ForwardOutcome, seconds: number) => void
}

/** A forward-mode handler and its connection pool. */
export interface Forwarder {
  /** The handler to give the plugin. */
  readonly handler: CallbackHandler
  /** Closes idle pooled connections; call when the server closes. */
  close (): void
}

// The forward must give up a little before the plugin's own deadline timer fires, so
// that the caller gets the forward's 504 rather than a generic deadline error.
const DEADLINE_MARGIN_MS = 100
const MIN_SECRET_BYTES = 24
const MAX_SECRET_BYTES = 64

/** Checks a forward URL; throws `OSS_CB_ERR_INVALID_OPTION` naming `name`. */
export function checkForwardUrl (url: string, name = 'forwardUrl'): URL {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalidOption(`${name} is not a valid URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalidOption(`${name} must be an http: or https: URL`)
  // Credentials in a URL end up in logs; the upstream authenticates the signature instead.
  if (parsed.username !== '' || parsed.password !== '') throw invalidOption(`${name} must not hold user info`)
  if (parsed.hash !== '') throw invalidOption(`${name} must not hold a #fragment`)
  return parsed
}

/**
 * Checks a Standard Webhooks secret: `whsec_` then standard base64 of 24 to 64
 * bytes. Throws `OSS_CB_ERR_INVALID_OPTION` naming `name`; the message never
 * quotes the secret.
 */
export function checkForwardSecret (secret: string, name = 'forwardSecret'): void {
  if (!secret.startsWith('whsec_')) throw invalidOption(`${name} must start with whsec_`)
  let bytes: Buffer
  try {
    bytes = decodeStrictBase64(secret.slice('whsec_'.length), 1024)
  } catch {
    throw invalidOption(`${name} must be whsec_ followed by standard, padded base64`)
  }
  if (bytes.length < MIN_SECRET_BYTES || bytes.length > MAX_SECRET_BYTES) {
    throw invalidOption(`${name} must encode ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} random bytes, got ${bytes.length}`)
  }
}

/** The envelope forward mode sends for `callback`. */
export function forwardEnvelope (callback: VerifiedCallback, receivedAt: number): ForwardEnvelope {
  return {
    type: FORWARD_EVENT_TYPE,
    timestamp: new Date(receivedAt).toISOString(),
    data: {
      ossRequestId: callback.requestId ?? null,
      keyUrl: callback.keyUrl,
      keySource: callback.keySource,
      path: callback.path,
      query: callback.query,
      bodyType: callback.type,
      system: callback.system,
      vars: callback.vars,
      fields: callback.fields,
      rawBodyBase64: callback.raw.toString('base64')
    }
  }
}

class ForwardFailure {
  constructor (readonly outcome: ForwardOutcome, readonly error: OssCallbackError, readonly retryable = false) {}
}

function failure (outcome: ForwardOutcome, name: OssCallbackErrorName & ('FORWARD_FAILED' | 'FORWARD_TIMEOUT'), reason: string, cause?: unknown): ForwardFailure {
  return new ForwardFailure(outcome, ossError(name, reason, cause))
}

interface UpstreamAnswer { status: 200 | 204, body: Buffer }

/**
 * Creates forward mode: a handler that POSTs each verified callback, signed per
 * Standard Webhooks, to the upstream app and relays its answer to OSS.
 *
 * - 200 with a JSON body of at most 1 MB: relayed byte for byte;
 * - 204: `noContentReply`;
 * - anything else, a connection error, or a body that is not JSON: `OSS_CB_ERR_FORWARD_FAILED` (502);
 * - no complete answer within the timeout or the time left: `OSS_CB_ERR_FORWARD_TIMEOUT` (504).
 *
 * OSS never retries a callback, and neither does this, except once when a pooled
 * keep-alive connection turns out to have been closed by the upstream before the
 * request reached it (the same `webhook-id` is sent, so the upstream can deduplicate).
 */
export function createForwarder (options: ForwarderOptions): Forwarder {
  const url = checkForwardUrl(options.url)
  checkForwardSecret(options.secret)
  const timeoutMs = wholeNumberOption('forwardTimeoutMs', options.timeoutMs, 3500, { max: 60_000 })
  const maxSockets = wholeNumberOption('forwardMaxSockets', options.maxSockets, 64, { max: 10_000 })
  const sign = createSigner(options.secret)
  const now = options.now ?? Date.now
  const messageId = options.messageId ?? (() => `msg_${randomUUID()}`)
  const noContentReply = options.noContentReply ?? (() => undefined)
  const onOutcome = options.onOutcome
  const secure = url.protocol === 'https:'
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets }) : new HttpAgent({ keepAlive: true, maxSockets })
  const send = secure ? httpsRequest : httpRequest

  function exchange (payload: string, headers: OutgoingHttpHeaders, budgetMs: number, signal: AbortSignal): Promise<UpstreamAnswer> {
    if (signal.aborted) return Promise.reject(new ForwardFailure('deadline', ossError('DEADLINE_EXCEEDED', 'callback deadline passed before the forward')))
    return new Promise<UpstreamAnswer>((resolve, reject) => {
      let settled = false
      let answered = false
      const req = send(url, { method: 'POST', agent, headers })
      const finish = (fail: ForwardFailure | undefined, answer?: UpstreamAnswer): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        if (fail === undefined) { resolve(answer as UpstreamAnswer); return }
        req.destroy()
        reject(fail)
      }
      const timer = setTimeout(() => finish(failure('timeout', 'FORWARD_TIMEOUT', 'upstream did not answer in time')), budgetMs)
      const onAbort = (): void => {
        const reason = signal.reason as unknown
        const err = isOssCallbackError(reason) ? reason : ossError('DEADLINE_EXCEEDED', 'callback deadline passed during the forward')
        finish(new ForwardFailure('deadline', err))
      }
      signal.addEventListener('abort', onAbort)

      req.on('error', (err: NodeJS.ErrnoException) => {
        const stale = !answered && req.reusedSocket && err.code === 'ECONNRESET'
        finish(new ForwardFailure('unreachable', ossError('FORWARD_FAILED', 'upstream connection failed', err), stale))
      })
      req.on('response', (res: IncomingMessage) => {
        answered = true
        const status = res.statusCode
        if (status === 204) {
          res.resume()
          finish(undefined, { status: 204, body: Buffer.alloc(0) })
          return
        }
        if (status !== 200) {
          finish(failure('bad_status', 'FORWARD_FAILED', `upstream answered ${String(status)}`))
          return
        }
        const declared = Number(res.headers['content-length'] ?? 'NaN')
        if (declared > MAX_REPLY_BYTES) {
          finish(failure('too_large', 'FORWARD_FAILED', 'upstream reply over 1 MB'))
          return
        }
        const chunks: Buffer[] = []
        let total = 0
        res.on('data', (chunk: Buffer) => {
          total += chunk.length
          if (total > MAX_REPLY_BYTES) finish(failure('too_large', 'FORWARD_FAILED', 'upstream reply over 1 MB'))
          else chunks.push(chunk)
        })
        res.on('end', () => finish(undefined, { status: 200, body: Buffer.concat(chunks, total) }))
        res.on('error', (err) => finish(failure('unreachable', 'FORWARD_FAILED', 'upstream reply interrupted', err)))
        res.on('aborted', () => finish(failure('unreachable', 'FORWARD_FAILED', 'upstream reply interrupted')))
      })
      req.end(payload)
    })
  }

  async function forward (callback: VerifiedCallback, context: CallbackContext): Promise<unknown> {
    const started = performance.now()
    let outcome: ForwardOutcome = 'ok'
    try {
      const budgetMs = Math.min(timeoutMs, context.remainingMs - DEADLINE_MARGIN_MS)
      if (budgetMs <= 0) throw failure('timeout', 'FORWARD_TIMEOUT', 'no time left to forward')
      const payload = JSON.stringify(forwardEnvelope(callback, context.receivedAt))
      const id = messageId()
      const sentSeconds = Math.floor(now() / 1000)
      const headers: OutgoingHttpHeaders = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        'user-agent': 'oss-callback-forward',
        'webhook-id': id,
        'webhook-timestamp': String(sentSeconds),
        'webhook-signature': sign(id, sentSeconds, payload)
      }
      let answer: UpstreamAnswer
      try {
        answer = await exchange(payload, headers, budgetMs, context.signal)
      } catch (err) {
        if (!(err instanceof ForwardFailure) || !err.retryable) throw err
        const left = budgetMs - (performance.now() - started)
        if (left <= 0) throw failure('timeout', 'FORWARD_TIMEOUT', 'upstream did not answer in time')
        answer = await exchange(payload, headers, left, context.signal)
      }
      if (answer.status === 204) {
        outcome = 'no_content'
        return noContentReply(callback)
      }
      try {
        return RawJsonReply.from(answer.body)
      } catch (cause) {
        throw failure('bad_reply', 'FORWARD_FAILED', 'upstream reply is not JSON', cause)
      }
    } catch (err) {
      if (err instanceof ForwardFailure) {
        outcome = err.outcome
        throw err.error
      }
      throw err
    } finally {
      if (onOutcome !== undefined) onOutcome(outcome, (performance.now() - started) / 1000)
    }
  }

  return {
    handler: forward,
    close: () => agent.destroy()
  }
}
