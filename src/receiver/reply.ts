import { STATUS_CODES } from 'node:http'
import { ossError, type ErrorReply, type OssCallbackError } from '../errors.js'

/**
 * OSS's rules for the answer to a callback, shared by the Fastify plugin and the
 * Express and Fetch API adapters: 200, JSON, an exact `Content-Length`, at most 1 MB.
 */

/** OSS refuses callback replies over 1 MB; stay under it. */
export const MAX_REPLY_BYTES = 1_000_000
/** What a handler that returns nothing answers. */
export const DEFAULT_REPLY: Buffer = Buffer.from('{"Status":"OK"}')
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * A reply that is already JSON bytes (for example an upstream app's answer in
 * forward mode), sent to OSS unchanged instead of being serialised again.
 * Create it with {@link RawJsonReply.from}, which checks what OSS checks.
 */
export class RawJsonReply {
  /** The exact bytes to send. */
  readonly bytes: Buffer
  private constructor (bytes: Buffer) { this.bytes = bytes }

  /**
   * Wraps `bytes` after checking them: at most {@link MAX_REPLY_BYTES}, UTF-8 without
   * a byte-order mark (OSS refuses one), and parseable JSON. Throws `OSS_CB_ERR_REPLY_INVALID`.
   */
  static from (bytes: Buffer): RawJsonReply {
    if (bytes.length > MAX_REPLY_BYTES) throw ossError('REPLY_INVALID', 'raw reply over 1 MB')
    let text: string
    try {
      text = utf8.decode(bytes)
    } catch {
      throw ossError('REPLY_INVALID', 'raw reply is not UTF-8')
    }
    if (text.charCodeAt(0) === 0xfeff) throw ossError('REPLY_INVALID', 'raw reply starts with a byte-order mark')
    try {
      JSON.parse(text)
    } catch (err) {
      throw ossError('REPLY_INVALID', 'raw reply is not JSON', jsonFailure(err))
    }
    return new RawJsonReply(bytes)
  }
}

/**
 * A JSON parse error reduced to its kind and position. V8's message quotes the text it failed on, and
 * here that text is an upstream's or a handler's answer: it must not reach the logs.
 */
function jsonFailure (err: unknown): Error {
  const kind = err instanceof Error ? err.name : 'Error'
  const position = err instanceof Error ? /\bat position (\d+)/.exec(err.message)?.[1] : undefined
  const failure = new Error(position === undefined ? kind : `${kind} at position ${position}`)
  failure.name = 'JsonParseFailure'
  return failure
}

/**
 * The bytes of a reply to OSS: `undefined` is `{"Status":"OK"}`, a {@link RawJsonReply} is sent
 * as it is, anything else is serialised. Throws `OSS_CB_ERR_REPLY_INVALID` when that is not JSON or over 1 MB.
 */
export function replyBytes (value: unknown): Buffer {
  if (value === undefined) return DEFAULT_REPLY
  if (value instanceof RawJsonReply) return value.bytes
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    throw ossError('REPLY_INVALID', 'handler reply is not JSON-serialisable', cause)
  }
  if (text === undefined) throw ossError('REPLY_INVALID', 'handler reply is not JSON-serialisable')
  const bytes = Buffer.from(text)
  if (bytes.length > MAX_REPLY_BYTES) throw ossError('REPLY_INVALID', 'handler reply over 1 MB')
  return bytes
}

/** The JSON error reply for a coded error. */
export function errorReplyOf (err: OssCallbackError): ErrorReply {
  return { statusCode: err.statusCode, code: err.code, error: STATUS_CODES[err.statusCode] ?? 'Error', message: err.message }
}
