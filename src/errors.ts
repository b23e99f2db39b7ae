import createError, { type FastifyErrorConstructor } from '@fastify/error'

/**
 * The one registry of the errors oss-callback answers with or throws.
 *
 * Every code is `OSS_CB_ERR_*` and carries its HTTP status. Messages are fixed
 * text: they never interpolate a header, a key, a signature or a body, so an
 * error reply cannot echo what a caller sent. The README's error table is kept
 * in sync with this list by a test.
 *
 * This module is a leaf: it imports nothing from the rest of `src/`, so the
 * pure `protocol/` layer may throw these errors too.
 */
type Coded<C extends string> = FastifyErrorConstructor<{ code: C, statusCode: number }, [{ cause: unknown }?]>

function define<C extends `OSS_CB_ERR_${string}`> (code: C, statusCode: number, message: string): Coded<C> {
  return createError(code, message, statusCode) as Coded<C>
}

export const errors = {
  /** A required callback header (`authorization` or `x-oss-pub-key-url`) is absent or empty. */
  MISSING_HEADER: define('OSS_CB_ERR_MISSING_HEADER', 400, 'A required OSS callback header is missing'),
  /** A callback header came more than once. */
  DUPLICATE_HEADER: define('OSS_CB_ERR_DUPLICATE_HEADER', 400, 'An OSS callback header was sent more than once'),
  /** `authorization` or `x-oss-pub-key-url` is not strict, padded, standard base64. */
  BAD_BASE64: define('OSS_CB_ERR_BAD_BASE64', 400, 'An OSS callback header is not valid base64'),
  /** The request is malformed at the HTTP level (for example a wrong `Content-Length`). */
  BAD_REQUEST: define('OSS_CB_ERR_BAD_REQUEST', 400, 'The request is malformed'),
  /** The request target cannot be read as a path and query. */
  BAD_REQUEST_TARGET: define('OSS_CB_ERR_BAD_REQUEST_TARGET', 400, 'The request target is not a valid path'),
  /** The signature verified but the body does not parse for its content type. */
  BODY_UNPARSEABLE: define('OSS_CB_ERR_BODY_UNPARSEABLE', 400, 'The verified callback body does not parse for its content type'),
  /** A `callback` / `callback-var` parameter breaks OSS's rules (the reason says which); OSS answers 400 InvalidArgument. */
  INVALID_CALLBACK_PARAM: define('OSS_CB_ERR_INVALID_CALLBACK_PARAM', 400, 'The callback parameter is invalid'),
  /** The public key URL is not on the allowlist (or is not a canonical `/<name>.pem` URL). */
  KEY_URL_NOT_ALLOWED: define('OSS_CB_ERR_KEY_URL_NOT_ALLOWED', 403, 'The public key URL is not allowed'),
  /** The RSA signature does not match the string to sign. */
  SIGNATURE_MISMATCH: define('OSS_CB_ERR_SIGNATURE_MISMATCH', 403, 'The callback signature does not verify'),
  /** A verified callback names a bucket that is not on the configured list (`buckets`), or no bucket. */
  BUCKET_NOT_ALLOWED: define('OSS_CB_ERR_BUCKET_NOT_ALLOWED', 403, 'The callback is for a bucket that is not allowed'),
  /** No callback route for this method and path. */
  NOT_FOUND: define('OSS_CB_ERR_NOT_FOUND', 404, 'Not found'),
  /** The callback path only takes POST. */
  METHOD_NOT_ALLOWED: define('OSS_CB_ERR_METHOD_NOT_ALLOWED', 405, 'Method not allowed'),
  /** The request (headers and body) did not arrive within the server's request or headers timeout. */
  REQUEST_TIMEOUT: define('OSS_CB_ERR_REQUEST_TIMEOUT', 408, 'The request did not arrive in time'),
  /** The body is larger than the configured limit. */
  BODY_TOO_LARGE: define('OSS_CB_ERR_BODY_TOO_LARGE', 413, 'The callback body is too large'),
  /** The content type is neither `application/x-www-form-urlencoded` nor `application/json`. */
  UNSUPPORTED_MEDIA_TYPE: define('OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE', 415, 'The callback content type is not supported'),
  /** The request headers are larger than the HTTP parser accepts (16 KiB in Node by default). */
  HEADERS_TOO_LARGE: define('OSS_CB_ERR_HEADERS_TOO_LARGE', 431, 'The request headers are too large'),
  /** The handler threw or rejected. */
  HANDLER_FAILED: define('OSS_CB_ERR_HANDLER_FAILED', 500, 'The callback handler failed'),
  /** The handler's reply cannot be sent to OSS (not JSON-serialisable, or over 1 MB). */
  REPLY_INVALID: define('OSS_CB_ERR_REPLY_INVALID', 500, 'The callback reply is not valid for OSS'),
  /**
   * Express and Fetch API adapters: something (a global `express.json()`, `await request.json()`)
   * read the request before verification, so the signed bytes are gone. The message names the fix.
   */
  BODY_ALREADY_READ: define('OSS_CB_ERR_BODY_ALREADY_READ', 500,
    'The callback body was already read by a body parser: mount the oss-callback middleware before express.json() and express.urlencoded() (or give those their own routes), and never read the request before verifying it'),
  /** An unexpected internal error. */
  INTERNAL: define('OSS_CB_ERR_INTERNAL', 500, 'Internal error'),
  /** The public key could not be fetched (network error, non-200, redirect, over the size cap). */
  KEY_FETCH_FAILED: define('OSS_CB_ERR_KEY_FETCH_FAILED', 502, 'The public key could not be fetched'),
  /** The fetched public key is not a PEM RSA public key. */
  KEY_INVALID: define('OSS_CB_ERR_KEY_INVALID', 502, 'The public key is not a valid RSA public key'),
  /** A recent fetch of this key URL failed; the next attempt waits out a back-off. */
  KEY_FETCH_BACKOFF: define('OSS_CB_ERR_KEY_FETCH_BACKOFF', 503, 'The public key is temporarily unavailable'),
  /** The receiver is shutting down or has not passed its self-test. */
  NOT_READY: define('OSS_CB_ERR_NOT_READY', 503, 'The receiver is not ready'),
  /** Forward mode: the upstream app is unreachable, or answered neither 200 with JSON (at most 1 MB) nor 204. */
  FORWARD_FAILED: define('OSS_CB_ERR_FORWARD_FAILED', 502, 'The upstream application did not accept the callback'),
  /** Forward mode: the upstream app did not answer within the forward timeout (or the time left). */
  FORWARD_TIMEOUT: define('OSS_CB_ERR_FORWARD_TIMEOUT', 504, 'The upstream application did not answer in time'),
  /** The key fetch did not finish within its timeout (or the time left). */
  KEY_FETCH_TIMEOUT: define('OSS_CB_ERR_KEY_FETCH_TIMEOUT', 504, 'The public key fetch timed out'),
  /** The callback's deadline passed before a reply was ready. */
  DEADLINE_EXCEEDED: define('OSS_CB_ERR_DEADLINE_EXCEEDED', 504, 'The callback deadline was exceeded'),
  /** Upload tickets: the ticket request body is malformed, or its suggested key is not a safe key under the prefix. */
  TICKET_REQUEST_INVALID: define('OSS_CB_ERR_TICKET_REQUEST_INVALID', 400, 'The upload ticket request is invalid'),
  /** Upload tickets: no valid `Authorization: Bearer <token>` on the ticket endpoint (standalone server). */
  TICKET_AUTH_REQUIRED: define('OSS_CB_ERR_TICKET_AUTH_REQUIRED', 401, 'A valid bearer token is required for upload tickets'),
  /** Upload tickets: the app's `authorize` hook refused the ticket request. */
  TICKET_DENIED: define('OSS_CB_ERR_TICKET_DENIED', 403, 'The upload ticket request was refused'),
  /** Upload tickets: the declared size is over the configured maximum. */
  TICKET_TOO_LARGE: define('OSS_CB_ERR_TICKET_TOO_LARGE', 413, 'The upload is larger than allowed'),
  /** Upload tickets: the declared content type is not on the allowlist. */
  TICKET_CONTENT_TYPE: define('OSS_CB_ERR_TICKET_CONTENT_TYPE', 415, 'The upload content type is not allowed'),
  /** Tickets on: a verified callback carries no `x:ticket` (and callbacks without one are refused). */
  TICKET_MISSING: define('OSS_CB_ERR_TICKET_MISSING', 403, 'The callback carries no upload ticket'),
  /** Tickets on: the callback's ticket was never issued here (or was forgotten long ago). */
  TICKET_UNKNOWN: define('OSS_CB_ERR_TICKET_UNKNOWN', 403, 'The upload ticket is unknown'),
  /** Tickets on: the callback arrived after its ticket expired (expiry plus the grace period). */
  TICKET_EXPIRED: define('OSS_CB_ERR_TICKET_EXPIRED', 403, 'The upload ticket has expired'),
  /** Tickets on: the callback's bucket, key or size is not what its ticket allowed. */
  TICKET_MISMATCH: define('OSS_CB_ERR_TICKET_MISMATCH', 403, 'The callback does not match its upload ticket'),
  /** Tickets on: the ticket was already consumed: this callback is a replay. */
  TICKET_USED: define('OSS_CB_ERR_TICKET_USED', 409, 'The upload ticket was already used'),
  /** The ticket store (Redis) did not answer. */
  TICKET_STORE_FAILED: define('OSS_CB_ERR_TICKET_STORE_FAILED', 503, 'The upload ticket store is unavailable'),
  /** The event store could not commit the callback's event (disk full, store unwritable, database down). */
  STORE_FAILED: define('OSS_CB_ERR_STORE_FAILED', 503, 'The event store cannot record the callback'),
  /** The event store cannot be opened: driver missing, foreign or corrupt file, newer schema, database unreachable (thrown at start-up). */
  STORE_UNUSABLE: createError('OSS_CB_ERR_STORE_UNUSABLE', 'Event store unusable: %s', 500) as FastifyErrorConstructor<{ code: string, statusCode: number }, [string]>,
  /** An option or environment variable has a bad value (thrown at start-up, never answered). */
  INVALID_OPTION: createError('OSS_CB_ERR_INVALID_OPTION', 'Invalid option: %s', 500) as FastifyErrorConstructor<{ code: 'OSS_CB_ERR_INVALID_OPTION', statusCode: number }, [string]>,
  /** Neither node:crypto nor the node-forge fallback verified the known OSS callback at start-up. */
  SELF_TEST_FAILED: define('OSS_CB_ERR_SELF_TEST_FAILED', 500, 'The start-up self-test failed')
} as const

export type OssCallbackErrorName = keyof typeof errors

/** Every error code oss-callback answers with or throws: `'OSS_CB_ERR_MISSING_HEADER' | …`. */
export type OssCallbackErrorCode = InstanceType<(typeof errors)[OssCallbackErrorName]>['code']

/** An error from the registry: it has a stable `code` and an HTTP `statusCode`. */
export interface OssCallbackError extends Error {
  code: OssCallbackErrorCode
  statusCode: number
  /** Why, for the log only: a fixed phrase chosen by the code, never caller input. */
  reason?: string
  /** The likely cause of a refusal and its fix, for the operator's log only (src/diagnose/); never sent. */
  hint?: string
}

/** A start-up error for a bad option or environment value; `message` says which and why. */
export function invalidOption (message: string): OssCallbackError {
  return new errors.INVALID_OPTION(message)
}

/** A start-up error for an event store that cannot be opened; `message` says which store and why, in one line. */
export function storeUnusable (message: string): OssCallbackError {
  return new errors.STORE_UNUSABLE(message)
}

/** Creates the registry error `name`, with a reason for the log (never sent to the caller). */
export function ossError (name: Exclude<OssCallbackErrorName, 'INVALID_OPTION' | 'STORE_UNUSABLE'>, reason?: string, cause?: unknown): OssCallbackError {
  const E = errors[name]
  const err: OssCallbackError = cause === undefined ? new E() : new E({ cause })
  if (reason !== undefined) err.reason = reason
  return err
}

const registeredCodes = new Set<string>(Object.values(errors).map((E) => new E().code))

/** True when `err` is one of oss-callback's coded errors. */
export function isOssCallbackError (err: unknown): err is OssCallbackError {
  const code = (err as { code?: unknown } | null)?.code
  return err instanceof Error && typeof code === 'string' && registeredCodes.has(code)
}

/** Every registered error as `{ code, statusCode }`, in registry order. */
export function listErrorCodes (): Array<{ code: string, statusCode: number, message: string }> {
  return Object.values(errors).map((E) => {
    // No argument: util.format would append it to every message that has no %s.
    const e = new (E as new () => OssCallbackError)()
    return { code: e.code, statusCode: e.statusCode, message: e.message }
  })
}

/** The JSON body of an error reply. */
export interface ErrorReply {
  statusCode: number
  code: string
  error: string
  message: string
}
