import { isOssCallbackError, ossError, type OssCallbackError } from '../errors.js'
import { errorReplyOf, replyBytes } from '../receiver/reply.js'
import { verifyCallback, type CallbackVerifier, type VerifiedCallback } from '../receiver/verify.js'
import { bodyLimitOption } from './options.js'
import { readWebBody } from './read-body.js'

/** Options of {@link verifyRequest}. */
export interface VerifyRequestOptions {
  /**
   * The verifier, made once with `createCallbackVerifier` for other key origins, a
   * `publicPath` or shared key settings. Default: the production settings of `verifyCallback`.
   */
  verifier?: CallbackVerifier
  /** Largest callback body accepted, in bytes. Default: 65536. */
  bodyLimitBytes?: number
  /** Time left for this callback, in ms: bounds the key fetch. Default: the key provider's fetch timeout. */
  timeoutMs?: number
  /**
   * The raw request target (path and query) as it arrived, such as Node's `req.url`.
   * Default: the path and query of `request.url`, which the WHATWG URL parser has
   * normalised; that differs from what OSS signed when the target holds `.`/`..`
   * segments, a backslash, or raw spaces, quotes or `<>` in the query (docs/adapters.md).
   */
  requestTarget?: string
}

/** The origin-form target of an absolute `Request.url`: path and query, without the fragment. */
function targetOf (url: string): string {
  const u = new URL(url)
  return u.pathname + u.search
}

/**
 * Verifies an OSS callback arriving as a Fetch API `Request` (Next.js App Router,
 * Hono, Bun, Deno, Cloudflare-style handlers). Reads the raw body itself (do not read
 * it first), resolves to the verified callback, and rejects with a coded error.
 */
export async function verifyRequest (request: Request, options: VerifyRequestOptions = {}): Promise<VerifiedCallback> {
  const limit = bodyLimitOption(options.bodyLimitBytes)
  if (request.method !== 'POST') throw ossError('METHOD_NOT_ALLOWED', 'callback path takes POST only')
  if (request.bodyUsed) throw ossError('BODY_ALREADY_READ', 'the request body was read before verification')
  const body = await readWebBody(request, limit)
  const headers: Record<string, string> = {}
  // Headers joins a repeated header with ", ", which strict base64 then refuses.
  request.headers.forEach((value, name) => { headers[name] = value })
  const callbackRequest = { url: options.requestTarget ?? targetOf(request.url), headers, body }
  const verifyOptions = options.timeoutMs === undefined ? undefined : { timeoutMs: options.timeoutMs }
  return options.verifier === undefined
    ? await verifyCallback(callbackRequest, verifyOptions)
    : await options.verifier.verify(callbackRequest, verifyOptions)
}

function jsonResponse (status: number, body: Uint8Array, contentType: string): Response {
  return new Response(body, { status, headers: { 'content-type': contentType, 'content-length': String(body.byteLength) } })
}

/** A coded error as a `Response`: its status and `{statusCode, code, error, message}`; anything else is `500 OSS_CB_ERR_INTERNAL`. */
export function errorResponse (error: unknown): Response {
  const err: OssCallbackError = isOssCallbackError(error) ? error : ossError('INTERNAL', 'unexpected error', error)
  return jsonResponse(err.statusCode, new TextEncoder().encode(JSON.stringify(errorReplyOf(err))), 'application/json; charset=utf-8')
}

/**
 * The answer to OSS under its rules: 200, JSON, an exact `Content-Length`, at most 1 MB.
 * `undefined` answers `{"Status":"OK"}`. A value that cannot be sent (not JSON-serialisable,
 * over 1 MB) becomes the coded `500 OSS_CB_ERR_REPLY_INVALID` response.
 */
export function callbackResponse (value?: unknown): Response {
  let body: Uint8Array
  try {
    body = replyBytes(value)
  } catch (err) {
    return errorResponse(err)
  }
  return jsonResponse(200, body, 'application/json')
}
