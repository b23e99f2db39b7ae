import { performance } from 'node:perf_hooks'
import type { AttemptResult, DeliveryWorker } from '../delivery/worker.js'
import { errors, isOssCallbackError, ossError, type OssCallbackError, type OssCallbackErrorName } from '../errors.js'
import { eventId, type EventStore, type RecordedAnswer, type StoredEvent } from '../events/store.js'
import { errorReplyOf, RawJsonReply, type CallbackContext, type CallbackHandler } from '../receiver/plugin.js'
import { replyBytes } from '../receiver/reply.js'
import type { VerifiedCallback } from '../receiver/verify.js'
import { forwardEnvelope } from './forward.js'

/** What OSS gets when the app fails and the event is queued for background delivery. */
export type UpstreamFailurePolicy = 'refuse' | 'accept'

/** Options of {@link createGatewayHandler}. */
export interface GatewayOptions {
  store: EventStore
  worker: DeliveryWorker
  /** Default `refuse`: OSS gets the coded 502/504 (the uploader sees 203); `accept`: 200 with `delivery: queued`. */
  onUpstreamFailure?: UpstreamFailurePolicy
  /** The reply when the app answers 204. */
  noContentReply: (callback: VerifiedCallback) => unknown
  /**
   * With tickets on: consumes the callback's ticket. Called only after the event is committed, so a
   * failed commit never spends a ticket; a refusal marks the event `rejected` and is answered as is.
   */
  bindTicket?: (callback: VerifiedCallback, deadlineAt: number) => Promise<unknown>
  /** Clock, ms since the epoch. Default `Date.now`. */
  now?: () => number
  /** Called with a store failure that did not change the answer (recording an outcome). Must not throw. */
  onStoreError?: (err: unknown) => void
}

// The attempt gives up this long before the plugin's deadline, leaving time to record its outcome and answer.
const DEADLINE_MARGIN_MS = 150

const NAME_BY_CODE = new Map<string, OssCallbackErrorName>(
  (Object.keys(errors) as OssCallbackErrorName[]).map((name) => [new (errors[name] as unknown as new () => OssCallbackError)().code, name]))

function errorAnswer (err: OssCallbackError): RecordedAnswer {
  return { status: err.statusCode, body: Buffer.from(JSON.stringify(errorReplyOf(err))) }
}

/** The queued answer of `accept`. */
export function queuedReply (id: string): Buffer {
  return Buffer.from(JSON.stringify({ Status: 'OK', delivery: 'queued', eventId: id }))
}

/** Turns a recorded answer back into what the handler returns or throws. */
function replay (answer: RecordedAnswer): RawJsonReply {
  if (answer.status === 200) return RawJsonReply.from(answer.body)
  let code: unknown
  try { code = (JSON.parse(answer.body.toString('utf8')) as { code?: unknown }).code } catch { code = undefined }
  const name = typeof code === 'string' ? NAME_BY_CODE.get(code) : undefined
  if (name === undefined || name === 'INVALID_OPTION' || name === 'STORE_UNUSABLE') throw ossError('FORWARD_FAILED', 'recorded answer for a resent callback')
  throw ossError(name, 'resent callback: the recorded answer')
}

function storeFailed (err: unknown): OssCallbackError {
  if (isOssCallbackError(err) && err.code === 'OSS_CB_ERR_STORE_FAILED') return err
  return ossError('STORE_FAILED', 'event not recorded', err)
}

/**
 * The durable gateway: a callback handler that records each verified callback in the event log
 * before anything is answered, then delivers it at once within the callback's time left, leaving
 * failures to the background worker. The plugin does not know it exists.
 */
export function createGatewayHandler (options: GatewayOptions): CallbackHandler {
  const { store, worker } = options
  const policy = options.onUpstreamFailure ?? 'refuse'
  const now = options.now ?? Date.now

  function failureOf (result: AttemptResult): OssCallbackError {
    if (result.outcome === 'rejected') return ossError('FORWARD_FAILED', `app refused the event (${result.status ?? '?'})`)
    if (result.reason === 'timeout' || result.reason === 'aborted') return ossError('FORWARD_TIMEOUT', 'app did not answer in time; queued for retry')
    return ossError('FORWARD_FAILED', `${result.error ?? 'app failed'}; queued for retry`)
  }

  // The answer for a resent callback whose first answer was never recorded (the process died in between).
  function unrecorded (event: StoredEvent, callback: VerifiedCallback): unknown {
    if (event.state === 'delivered') return options.noContentReply(callback)
    if (event.state === 'pending' && policy === 'accept') return RawJsonReply.from(queuedReply(event.id))
    if (event.state === 'pending') throw ossError('FORWARD_FAILED', 'resent callback: the event is queued for retry')
    throw ossError('FORWARD_FAILED', `resent callback: the event is ${event.state}`)
  }

  return async function gateway (callback: VerifiedCallback, context: CallbackContext): Promise<unknown> {
    const started = performance.now()
    const id = eventId({ path: callback.path, query: callback.query, body: callback.raw, requestId: callback.requestId })
    let appended
    try {
      appended = await store.append({
        id,
        type: 'oss.callback.verified',
        bucket: callback.system.bucket ?? null,
        objectKey: callback.system.object ?? null,
        etag: callback.system.etag ?? null,
        envelope: JSON.stringify(forwardEnvelope(callback, context.receivedAt)),
        // The background worker leaves it alone until this callback is over (or its process died).
        firstAttemptAt: Math.ceil(now() + context.remainingMs) + 1000
      })
    } catch (err) {
      throw storeFailed(err)
    }
    const { event, created } = appended
    if (!created) return event.answer !== null ? replay(event.answer) : unrecorded(event, callback)

    const timeLeft = (): number => context.remainingMs - (performance.now() - started) - DEADLINE_MARGIN_MS
    if (options.bindTicket !== undefined) {
      try {
        await options.bindTicket(callback, now() + Math.max(0, timeLeft()))
      } catch (err) {
        const refusal = isOssCallbackError(err) ? err : ossError('TICKET_STORE_FAILED', 'ticket check failed', err)
        try {
          await store.finish(id, 'rejected', null, errorAnswer(refusal))
        } catch (storeErr) {
          options.onStoreError?.(storeErr)
        }
        throw refusal
      }
    }

    let failure: OssCallbackError | undefined
    let reply: Buffer | undefined
    let answered = (): void => {}
    const hasAnswer = new Promise<void>((resolve) => { answered = resolve })
    const attempt = worker.attemptNow(event, {
      signal: context.signal,
      timeLeftMs: timeLeft(),
      answer: (r) => {
        answered()
        if (r.outcome === 'delivered') {
          reply = r.body === null || r.body.length === 0 ? replyBytes(options.noContentReply(callback)) : r.body
          return { status: 200, body: reply }
        }
        if (r.outcome === 'retry' && policy === 'accept') {
          reply = queuedReply(id)
          return { status: 200, body: reply }
        }
        failure = failureOf(r)
        return errorAnswer(failure)
      }
    })
    // OSS gets its answer as soon as the app has given one; the outcome is recorded meanwhile (a delivery
    // outcome shares a later transaction, see events/group-commit.ts). Should the process die before that
    // record, the event is still pending and is delivered again: at least once, as promised.
    void attempt.then((result) => {
      if (result.state === null && result.outcome !== 'retry') {
        // The outcome was not recorded: the event stays pending and is attempted again in the background.
        options.onStoreError?.(new Error(`event ${id}: outcome not recorded`))
      }
    }, (err: unknown) => { options.onStoreError?.(err) })
    const result = await Promise.race([hasAnswer.then(() => undefined), attempt])
    if (failure !== undefined) throw failure
    if (reply === undefined) {
      // attemptNow had no time to try (its answer callback never ran): the event is queued.
      if (policy === 'accept') return RawJsonReply.from(queuedReply(id))
      throw failureOf(result ?? await attempt)
    }
    return RawJsonReply.from(reply)
  }
}
