import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { MAX_APP_REPLY_BYTES } from './classify.js'

/** One POST to the app. */
export interface SendRequest {
  url: URL
  headers: OutgoingHttpHeaders
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

/** A keep-alive agent for the app's origin. */
export function createAgent (url: URL, maxSockets: number): HttpAgent {
  return url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, maxSockets }) : new HttpAgent({ keepAlive: true, maxSockets })
}

/**
 * The default sender: node:http(s) through `agent`. A pooled keep-alive connection that the app
 * closed before the request reached it is retried once on a fresh one (the same `webhook-id`).
 */
export function createHttpSender (agent: HttpAgent): Sender {
  return async (request) => {
    try {
      return await exchange(agent, request)
    } catch (err) {
      if (!(err instanceof StaleSocket)) throw err
      return await exchange(agent, request)
    }
  }
}

class StaleSocket extends SendFailure {}

function exchange (agent: HttpAgent, { url, headers, body, timeoutMs, signal }: SendRequest): Promise<SendAnswer> {
  if (signal?.aborted === true) return Promise.reject(new SendFailure('aborted'))
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<SendAnswer>((resolve, reject) => {
    let settled = false
    let answered = false
    const req = send(url, { method: 'POST', agent, headers })
    const finish = (fail: SendFailure | undefined, answer?: SendAnswer): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (fail === undefined) { resolve(answer as SendAnswer); return }
      req.destroy()
      reject(fail)
    }
    const timer = setTimeout(() => finish(new SendFailure('timeout')), timeoutMs)
    const onAbort = (): void => finish(new SendFailure('aborted'))
    signal?.addEventListener('abort', onAbort)
    req.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'error'
      finish(!answered && req.reusedSocket && code === 'ECONNRESET' ? new StaleSocket('unreachable', code) : new SendFailure('unreachable', code))
    })
    req.on('response', (res: IncomingMessage) => {
      answered = true
      const status = res.statusCode ?? 0
      const chunks: Buffer[] = []
      let total = 0
      res.on('data', (chunk: Buffer) => {
        total += chunk.length
        if (total > MAX_APP_REPLY_BYTES) {
          finish(undefined, { status, body: Buffer.alloc(0), overLimit: true })
          req.destroy()
        } else chunks.push(chunk)
      })
      res.on('end', () => finish(undefined, { status, body: Buffer.concat(chunks, total), overLimit: false }))
      res.on('error', () => finish(new SendFailure('unreachable', 'reply interrupted')))
      res.on('aborted', () => finish(new SendFailure('unreachable', 'reply interrupted')))
    })
    req.end(body)
  })
}
