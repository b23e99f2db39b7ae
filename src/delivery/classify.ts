/**
 * How an answer from the app (or its absence) is classified. One table, used by the first
 * attempt inside the callback and by every background retry:
 *
 * | answer                                                   | outcome     |
 * |----------------------------------------------------------|-------------|
 * | 204, or another 2xx with a JSON body of at most 1 MB     | `delivered` |
 * | a 2xx whose body is not JSON (or is empty), or over 1 MB | `retry`     |
 * | 408, 409, 425, 429                                       | `retry`     |
 * | any other 4xx: the app's deliberate refusal              | `rejected`  |
 * | 5xx, 1xx, 3xx (redirects are not followed)               | `retry`     |
 * | connection refused or reset, timeout                     | `retry`     |
 */
import type { AttemptOutcome } from '../events/store.js'

/** The largest app reply accepted, as OSS accepts no larger callback reply. */
export const MAX_APP_REPLY_BYTES = 1024 * 1024

/** Why an attempt ended as it did, for metrics and the attempt's error text. */
export type AttemptReason =
  | 'ok' | 'no_content' | 'refused' | 'bad_status' | 'bad_reply' | 'too_large' | 'unreachable' | 'timeout' | 'aborted'

export interface Classification {
  outcome: AttemptOutcome
  reason: AttemptReason
  /** A fixed phrase for the attempt record, or null when delivered. */
  error: string | null
}

const RETRYABLE_4XX = new Set([408, 409, 425, 429])
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function isJson (body: Buffer): boolean {
  try {
    const text = utf8.decode(body)
    // OSS refuses a reply with a byte-order mark, so the app's bytes must not carry one.
    if (text.charCodeAt(0) === 0xfeff) return false
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** Classifies an HTTP answer. `overLimit`: the body was cut off past {@link MAX_APP_REPLY_BYTES}. */
export function classifyAnswer (status: number, body: Buffer, overLimit = false): Classification {
  if (status === 204) return { outcome: 'delivered', reason: 'no_content', error: null }
  if (status >= 200 && status < 300) {
    if (overLimit || body.length > MAX_APP_REPLY_BYTES) return { outcome: 'retry', reason: 'too_large', error: 'app reply over 1 MB' }
    if (!isJson(body)) return { outcome: 'retry', reason: 'bad_reply', error: `app answered ${status} without a JSON body` }
    return { outcome: 'delivered', reason: 'ok', error: null }
  }
  if (status >= 400 && status < 500 && !RETRYABLE_4XX.has(status)) return { outcome: 'rejected', reason: 'refused', error: `app answered ${status}` }
  return { outcome: 'retry', reason: 'bad_status', error: `app answered ${status}` }
}

/** Classifies an attempt that got no answer. */
export function classifyFailure (kind: 'unreachable' | 'timeout' | 'aborted', detail?: string): Classification {
  const error = kind === 'timeout' ? 'app did not answer in time'
    : kind === 'aborted' ? 'attempt cut short (callback deadline or shutdown)'
      : `app unreachable${detail === undefined ? '' : ` (${detail})`}`
  return { outcome: 'retry', reason: kind, error }
}
