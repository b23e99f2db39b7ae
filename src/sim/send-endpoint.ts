import { createHash } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { isOssCallbackError, ossError, type ErrorReply, type OssCallbackError } from '../errors.js'
import { decodeCallbackParam, defaultCallbackBody, encodeCallbackParam, normalizeCallbackVarName, type DecodedCallbackParam } from '../protocol/callback-param.js'
import { crc64 } from '../protocol/crc64.js'
import type { DispatchResult } from './callback-dispatch.js'
import { factsOf, type ObjectFacts, type ObjectStore } from './store.js'

/** The simulator's endpoint that fires a callback without an upload. `/-/` can never be a bucket. */
export const SEND_PATH = '/-/callbacks'

/** Largest `--size` of an object that does not exist, bytes: its ETag and CRC-64 are computed over that many zero bytes. */
export const MAX_SYNTHETIC_SIZE = 1024 * 1024 * 1024

/** What `oss-callback send` asks the simulator to do (the JSON body of `POST /-/callbacks`). */
export interface SendRequest {
  /** One or up to 5 `;`-separated URLs. */
  callbackUrl: string
  /** Default `examplebucket`. */
  bucket?: string
  /** Default `example/object.txt`. */
  key?: string
  /** Bytes, used when the object is not stored in the simulator. Default 0. */
  size?: number
  /** Default: the common system variables and every variable given (`defaultCallbackBody`). */
  callbackBody?: string
  /** Default `form`. */
  callbackBodyType?: 'json' | 'form'
  callbackHost?: string
  /** Custom variables, `x:` added when missing. */
  vars?: Record<string, string>
}

/** One callback URL tried, as reported by `POST /-/callbacks`. */
export interface SendAttempt {
  url: string
  status?: number
  contentLength?: number
  elapsedMs: number
  /** Would OSS accept this reply? */
  ok: boolean
  /** OSS's 203 message when it would not. */
  message?: string
  /** The reply body as text (up to 1 MB; of a refusal, its first 4 KB). */
  body?: string
  /** True when no full reply came within OSS's timeout. */
  timedOut?: boolean
}

/** The answer of `POST /-/callbacks`. */
export interface SendResult {
  /** Would OSS accept the receiver's answer (and relay it with 200)? */
  accepted: boolean
  /** OSS's 203 message when not. */
  message?: string
  /** The callback body sent. */
  sentBody: string
  /** True when the bucket and key name an object stored in the simulator (its real values were sent). */
  storedObject: boolean
  /** The simulator's reply timeout, ms (OSS: 5000). */
  timeoutMs: number
  attempts: SendAttempt[]
}

interface SendContext {
  store: ObjectStore
  strict: boolean
  now: () => Date
  requestId: string
  timeoutMs: number
  run: (param: DecodedCallbackParam, object: ObjectFacts, vars: Record<string, string>) => Promise<DispatchResult>
}

const MAX_SEND_BODY_BYTES = 64 * 1024

function errorReply (err: OssCallbackError): ErrorReply {
  return {
    statusCode: err.statusCode,
    code: err.code,
    error: err.statusCode === 400 ? 'Bad Request' : 'Error',
    // The reason is one of our fixed phrases: it never echoes what the caller sent.
    message: err.reason === undefined ? err.message : `${err.message}: ${err.reason}`
  }
}

function asString (v: unknown, fallback: string): string {
  if (v === undefined) return fallback
  if (typeof v !== 'string') throw ossError('BAD_REQUEST', 'a field of the send request is not a string')
  return v
}

async function readJson (request: FastifyRequest): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request.raw) {
    size += (chunk as Buffer).length
    if (size > MAX_SEND_BODY_BYTES) throw ossError('BODY_TOO_LARGE', 'send request over 64 KB')
    chunks.push(chunk as Buffer)
  }
  let value: unknown
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw ossError('BAD_REQUEST', 'send request is not JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw ossError('BAD_REQUEST', 'send request is not a JSON object')
  return value as Record<string, unknown>
}

function syntheticFacts (bucket: string, key: string, size: number): ObjectFacts {
  // An object of `size` zero bytes: its ETag and CRC-64 are real values for that content.
  const hash = createHash('md5')
  const zeros = Buffer.alloc(Math.min(size, 1024 * 1024))
  let crc = 0n
  for (let left = size; left > 0; left -= zeros.length) {
    const chunk = left >= zeros.length ? zeros : zeros.subarray(0, left)
    hash.update(chunk)
    crc = crc64(chunk, crc)
  }
  const digest = hash.digest()
  return {
    bucket,
    key,
    etag: digest.toString('hex').toUpperCase(),
    size,
    contentType: 'application/octet-stream',
    crc64: crc.toString(),
    contentMd5: digest.toString('base64')
  }
}

/** Handles `POST /-/callbacks`: checks the request as an upload's callback parameter would be checked, then fires it. */
export async function fireTestCallback (request: FastifyRequest, reply: FastifyReply, ctx: SendContext): Promise<FastifyReply> {
  try {
    const body = await readJson(request)
    const type = asString(body.callbackBodyType, 'form')
    if (type !== 'json' && type !== 'form') throw ossError('INVALID_CALLBACK_PARAM', 'callbackBodyType must be json or form')
    const size = body.size ?? 0
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > MAX_SYNTHETIC_SIZE) {
      throw ossError('BAD_REQUEST', 'size must be an integer from 0 to 1073741824')
    }
    const vars = body.vars ?? {}
    if (vars === null || typeof vars !== 'object' || Array.isArray(vars)) throw ossError('BAD_REQUEST', 'vars must be an object')
    // Names first: the default body is built from them, and a bad name must say so, not that the body is wrong.
    for (const name of Object.keys(vars)) normalizeCallbackVarName(name)
    const callbackHost = body.callbackHost === undefined ? undefined : asString(body.callbackHost, '')
    // The same checks as an upload's parameter: encode as a client would, decode as OSS does.
    const encoded = encodeCallbackParam({
      callbackUrl: asString(body.callbackUrl, ''),
      callbackBody: asString(body.callbackBody, defaultCallbackBody(type, Object.keys(vars))),
      callbackBodyType: type === 'json' ? 'application/json' : 'application/x-www-form-urlencoded',
      ...(callbackHost === undefined ? {} : { callbackHost })
    }, vars as Record<string, string>)
    const param = decodeCallbackParam(encoded.callback, encoded.callbackVar, { strict: ctx.strict })
    if (param === undefined) throw ossError('INVALID_CALLBACK_PARAM', 'The callbackUrl is empty.')
    const bucket = asString(body.bucket, 'examplebucket')
    const key = asString(body.key, 'example/object.txt')
    const stored = await ctx.store.get(bucket, key)
    const facts = stored === undefined ? syntheticFacts(bucket, key, size) : factsOf(stored)
    const result = await ctx.run(param, facts, {})
    const answer: SendResult = {
      accepted: result.ok,
      ...(result.message === undefined ? {} : { message: result.message }),
      sentBody: result.sentBody,
      storedObject: stored !== undefined,
      timeoutMs: ctx.timeoutMs,
      attempts: result.attempts.map((a) => ({
        url: a.url,
        ...(a.status === undefined ? {} : { status: a.status }),
        ...(a.contentLength === undefined ? {} : { contentLength: a.contentLength }),
        elapsedMs: a.elapsedMs,
        ok: a.ok,
        ...(a.message === undefined ? {} : { message: a.message }),
        ...(a.body === undefined ? {} : { body: a.body.toString('utf8') }),
        ...(a.timedOut === true ? { timedOut: true } : {})
      }))
    }
    return await reply.code(200).type('application/json').send(answer)
  } catch (err) {
    const e = isOssCallbackError(err) ? err : ossError('INTERNAL', 'send failed', err)
    return await reply.code(e.statusCode).type('application/json').send(errorReply(e))
  }
}

