import { EventEmitter } from 'node:events'
import { Pool, type Dispatcher } from './undici.js'
import { MAX_APP_REPLY_BYTES } from './classify.js'

/** One POST to the app. */
export interface SendRequest {
  url: URL
  headers: Record<string, string>
  body: string
  timeoutMs: number
  signal?: AbortSignal
}

/** The app's answer: the body is read up to {@link MAX_APP_REPLY_BYTES}; `overLimit` when it was longer. */
export interface SendAnswer {
  status: number
  body: Buffer
  overLimit: boolean
}

/** Why a POST got no answer. */
export class SendFailure extends Error {
  constructor (readonly kind: 'unreachable' | 'timeout' | 'aborted', readonly detail?: string) {
    super(`delivery ${kind}${detail === undefined ? '' : `: ${detail}`}`)
  }
}

/** POSTs one request; resolves with the answer or rejects with a {@link SendFailure}. Injectable for tests. */
export type Sender = (request: SendRequest) => Promise<SendAnswer>

/** A keep-alive connection pool to the app's origin, one request per connection at a time. */
export function createPool (url: URL, connections: number): Pool {
  return new Pool(url.origin, { connections, pipelining: 1 })
}

// Connection-level failures before any answer: a pooled keep-alive connection that the app
// closed just as the request went out ends like this, with the request unseen by the app.
const CONNECTION_LOST = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

/**
 * The default sender: undici through `dispatcher`. A connection lost before any answer is retried
 * once on another connection, within the same time (the same `webhook-id`, so the app can
 * deduplicate should it have seen the first).
 */
export function createSender (dispatcher: Dispatcher): Sender {
  return async ({ url, headers, body, timeoutMs, signal }) => {
    if (signal?.aborted === true) throw new SendFailure('aborted')
    // An EventEmitter, which undici takes as a signal: an AbortController per delivery costs more
    // than the rest of the request on a fast local app.
    const abort = new EventEmitter()
    let stop: 'timeout' | 'aborted' | undefined
    const timer = setTimeout(() => { stop = 'timeout'; abort.emit('abort') }, timeoutMs)
    const onAbort = (): void => { stop ??= 'aborted'; abort.emit('abort') }
    signal?.addEventListener('abort', onAbort)
    const options: Dispatcher.RequestOptions = {
      origin: url.origin, path: url.pathname + url.search, method: 'POST', headers, body, signal: abort,
      headersTimeout: timeoutMs, bodyTimeout: timeoutMs
    }
    try {
      for (let tries = 1; ; tries++) {
        let answered = false
        try {
          const res = await dispatcher.request(options)
          answered = true
          return await readCapped(res)
        } catch (err) {
          if (stop !== undefined) throw new SendFailure(stop)
          const code = (err as NodeJS.ErrnoException).code ?? 'error'
          if (!answered && tries === 1 && CONNECTION_LOST.has(code)) continue
          // undici's name for a connection the app closed: recorded as the reset it is.
          throw new SendFailure('unreachable', answered ? 'reply interrupted' : code === 'UND_ERR_SOCKET' ? 'ECONNRESET' : code)
        }
      }
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }
}

// Events rather than `for await`: an async iterator per reply is a measurable share of a delivery.
function readCapped ({ statusCode, body }: Dispatcher.ResponseData): Promise<SendAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    body.on('data', (chunk: Buffer) => {
      total += chunk.length
      if (total > MAX_APP_REPLY_BYTES) {
        // Destroying an unread reply closes its connection, which a pool cannot reuse anyway.
        body.destroy()
        resolve({ status: statusCode, body: Buffer.alloc(0), overLimit: true })
        return
      }
      chunks.push(chunk)
    })
    body.on('end', () => { resolve({ status: statusCode, body: chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, total), overLimit: false }) })
    body.on('error', reject)
  })
}
