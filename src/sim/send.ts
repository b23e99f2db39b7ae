import { signV1, v1StringToSign } from '../protocol/oss-signing.js'
import type { SimCredentials } from './auth.js'
import { MAX_CALLBACK_REPLY_BYTES } from './callback-dispatch.js'
import { SEND_PATH, type SendAttempt, type SendRequest, type SendResult } from './send-endpoint.js'

import { DEFAULT_SIM_URL } from './defaults.js'

export { DEFAULT_SIM_URL }

/** Options of {@link sendTestCallback}. */
export interface SendTestCallbackOptions {
  /** The simulator's origin. Default {@link DEFAULT_SIM_URL}. */
  simUrl?: string
  /** Signs the request to the simulator (V1). */
  credentials: SimCredentials
  request: SendRequest
  /** Injected for tests. Default: global `fetch`. */
  fetch?: typeof fetch
  /** Gives up on the simulator after this long, ms. Default 60000 (five URLs of 5 s each, and then some). */
  timeoutMs?: number
}

/**
 * Asks a running simulator to fire a callback (`POST /-/callbacks`, signed with
 * the simulator's credentials) and returns what happened. Throws an `Error`
 * whose message says why when the simulator cannot be reached or refuses the request.
 */
export async function sendTestCallback (options: SendTestCallbackOptions): Promise<SendResult> {
  const base = (options.simUrl ?? DEFAULT_SIM_URL).replace(/\/+$/, '')
  const date = new Date().toUTCString()
  const headers = { 'content-type': 'application/json', date }
  const stringToSign = v1StringToSign({ method: 'POST', resource: SEND_PATH, headers })
  const authorization = `OSS ${options.credentials.accessKeyId}:${signV1(options.credentials.accessKeySecret, stringToSign)}`
  const doFetch = options.fetch ?? fetch
  let response: Response
  try {
    response = await doFetch(`${base}${SEND_PATH}`, {
      method: 'POST',
      headers: { ...headers, authorization },
      body: JSON.stringify(options.request),
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? 60_000)
    })
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name
    throw new Error(`cannot reach the simulator at ${base} (${cause}); start it with: oss-callback sim`)
  }
  const text = await response.text()
  if (response.status !== 200) {
    let detail = `HTTP ${response.status}`
    try {
      const body = JSON.parse(text) as { code?: string, message?: string }
      if (typeof body.code === 'string') detail = `${body.code}: ${body.message ?? ''}`
    } catch {
      const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1]
      const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1]
      if (code !== undefined) detail = `${code}: ${message ?? ''}`
    }
    throw new Error(`the simulator refused the request: ${detail}`)
  }
  return JSON.parse(text) as SendResult
}

const MAX_SHOWN_BODY_CHARS = 600

function oneLine (body: string | undefined): string {
  if (body === undefined || body.trim() === '') return '(no body)'
  const flat = body.replace(/\s+/g, ' ').trim()
  return flat.length > MAX_SHOWN_BODY_CHARS ? `${flat.slice(0, MAX_SHOWN_BODY_CHARS)}… (cut)` : flat
}

function check (ok: boolean): string {
  return ok ? 'ok  ' : 'FAIL'
}

/** The verdict lines for one attempt: status, length, JSON, time. */
function describeAttempt (a: SendAttempt, timeoutMs: number): string[] {
  const lines = [`POST ${a.url}`]
  if (a.status === undefined) {
    lines.push(`  ${check(false)} reply      ${a.timedOut === true ? `none within ${timeoutMs} ms` : 'no connection'}`)
  } else {
    lines.push(`  ${check(a.status === 200)} status     ${a.status}${a.status === 200 ? '' : ' (OSS accepts 200 only and follows no redirect)'}`)
    // OSS reports the status only; the receiver's own reason (a coded error) is what explains a refusal.
    if (a.status !== 200) lines.push(`  receiver said: ${a.status} ${oneLine(a.body)}`)
    if (a.status === 200) {
      const lengthOk = a.contentLength !== undefined && a.contentLength <= MAX_CALLBACK_REPLY_BYTES
      lines.push(`  ${check(lengthOk)} length     ${a.contentLength === undefined ? 'no Content-Length header' : `Content-Length ${a.contentLength}`} (OSS needs one, at most 1 MB)`)
      if (lengthOk && a.timedOut !== true) {
        lines.push(`  ${check(a.ok)} body       ${a.ok ? 'JSON' : 'not JSON (or starts with a BOM)'}`)
      }
    }
  }
  lines.push(`  ${check(a.timedOut !== true)} time       ${a.elapsedMs} ms (OSS waits ${timeoutMs} ms)`)
  if (a.message !== undefined) lines.push(`  OSS would say: ${a.message}`)
  return lines
}

/** A human report of a send result, for stderr. */
export function formatSendReport (result: SendResult): string {
  const lines: string[] = []
  for (const a of result.attempts) lines.push(...describeAttempt(a, result.timeoutMs))
  lines.push(result.accepted
    ? 'verdict: OSS would accept this reply and relay it to the uploader with 200'
    : `verdict: OSS would NOT accept it: the uploader would get 203 CallbackFailed "${result.message ?? ''}" (the object stays stored)`)
  return `${lines.join('\n')}\n`
}
