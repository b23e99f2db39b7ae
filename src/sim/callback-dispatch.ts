import { createHash, type KeyObject } from 'node:crypto'
import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LookupFunction } from 'node:net'
import { rootCertificates } from 'node:tls'
import { buildCallbackBody, type CallbackBodyValues } from '../protocol/body.js'
import { isPublicIpv4, type DecodedCallbackParam } from '../protocol/callback-param.js'
import { signCallback } from '../protocol/signature.js'
import { buildStringToSign, splitRequestTarget } from '../protocol/string-to-sign.js'

/** OSS waits this long for a callback reply, in ms; it is not configurable in OSS. */
export const OSS_CALLBACK_TIMEOUT_MS = 5000
/** How much of a refusal's body (a non-200 answer) is kept for `send`, and how long it is waited for. */
const MAX_REFUSAL_BODY_BYTES = 4096
const REFUSAL_BODY_WAIT_MS = 500

/** OSS refuses a callback reply body larger than this, in bytes. */
export const MAX_CALLBACK_REPLY_BYTES = 1024 * 1024

/** OSS's own 203 messages (protocol doc §6). */
export const CALLBACK_FAILURE_MESSAGES = Object.freeze({
  connect: 'Error status : -1. OSS can not connect to your callbackUrl, please check it.',
  status: (status: number) => `Error status : ${status}.`,
  timeout: (address: string, timeoutMs: number) => `error status:-1 ${address} reply timeout, cost: ${timeoutMs} MS, timeout: ${timeoutMs} MS`,
  notJson: 'Response body is not valid json format.',
  length: 'Error Status : 400.User server return too long content-length value'
})

/** How the simulator signs and sends a callback. */
export interface DispatchContext {
  privateKey: KeyObject
  /** The key URL sent (base64) in `x-oss-pub-key-url`. */
  publicKeyUrl: string
  requestId: string
  bucket: string
  /** The bucket owner's id, sent as `x-oss-owner` and `x-oss-requester`. */
  ownerId: string
  /** Reply timeout per URL, ms. OSS: 5000. */
  timeoutMs: number
  /** Refuse private and loopback addresses after DNS resolution, as OSS does. */
  strict: boolean
  now: () => Date
  /** Certificates trusted for https callback URLs (Node's root store plus these). Default: Node's root store. */
  trustedCa?: readonly string[]
}

/** One try of one callback URL. */
export interface CallbackAttempt {
  url: string
  /** The reply's status; absent when no reply came. */
  status?: number
  /** The reply's `Content-Length` header, when present. */
  contentLength?: number
  /** The reply body read (up to the 1 MB limit; of a non-200 answer, its first 4 KB, for diagnostics). */
  body?: Buffer
  /** From sending the request to the verdict, ms. */
  elapsedMs: number
  /** Would OSS accept this reply? */
  ok: boolean
  /** OSS's 203 message when not accepted. */
  message?: string
  /** True when no full reply came within the timeout. */
  timedOut?: boolean
}

/** The outcome of one callback, all URLs tried. */
export interface DispatchResult {
  ok: boolean
  /** The accepted reply body, relayed to the uploader. */
  body?: Buffer
  /** OSS's message for the last failure, put in the 203 `CallbackFailed` XML. */
  message?: string
  attempts: CallbackAttempt[]
  /** The callback body that was sent. */
  sentBody: string
}

function strictLookup (hostname: string, options: object, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
  dnsLookup(hostname, { ...options, family: 4 }, (err, address, family) => {
    if (err !== null) return callback(err, address, family)
    const first = Array.isArray(address) ? address[0]?.address : address
    if (first === undefined || !isPublicIpv4(first)) {
      const refused: NodeJS.ErrnoException = new Error('callback host resolves to a private address')
      refused.code = 'ECONNREFUSED'
      return callback(refused, address, family)
    }
    callback(null, address, family)
  })
}

function attempt (url: URL, body: Buffer, headers: Record<string, string>, param: DecodedCallbackParam, ctx: DispatchContext): Promise<CallbackAttempt> {
  const started = performance.now()
  const elapsed = (): number => Math.round(performance.now() - started)
  const https = url.protocol === 'https:'
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const port = url.port === '' ? (https ? 443 : 80) : Number(url.port)
  return new Promise((resolve) => {
    let settled = false
    let reply: IncomingMessage | undefined
    let onRefused: (() => void) | undefined
    let refusalTimer: NodeJS.Timeout | undefined
    const finish = (result: Omit<CallbackAttempt, 'url' | 'elapsedMs'>): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(refusalTimer)
      req.destroy()
      reply?.destroy()
      resolve({ url: url.href, elapsedMs: elapsed(), ...result })
    }
    const send = https ? httpsRequest : httpRequest
    const req = send({
      method: 'POST',
      hostname,
      port,
      path: `${url.pathname}${url.search}`,
      headers,
      agent: false,
      ...(ctx.strict ? { lookup: strictLookup as LookupFunction } : {}),
      // OSS sends SNI only when callbackSNI is true; an empty servername sends none.
      ...(https ? { servername: param.sni ? hostname : '' } : {}),
      ...(https && ctx.trustedCa !== undefined ? { ca: [...rootCertificates, ...ctx.trustedCa] } : {})
    })
    const timer = setTimeout(() => {
      if (onRefused !== undefined) return onRefused()
      const address = `${req.socket?.remoteAddress ?? hostname}:${req.socket?.remotePort ?? port}`
      finish({ ...(reply === undefined ? {} : { status: reply.statusCode }), ok: false, timedOut: true, message: CALLBACK_FAILURE_MESSAGES.timeout(address, ctx.timeoutMs) })
    }, ctx.timeoutMs)
    req.on('error', () => {
      finish({ ok: false, message: CALLBACK_FAILURE_MESSAGES.connect })
    })
    req.on('response', (res) => {
      reply = res
      const status = res.statusCode ?? 0
      // 200 only: OSS follows no redirect and accepts no other 2xx.
      if (status !== 200) {
        // OSS gives up on the status alone; the refusal's body is read briefly, only so that `send` can show
        // the receiver's coded reason.
        const chunks: Buffer[] = []
        let size = 0
        const done = (): void => {
          const body = Buffer.concat(chunks).subarray(0, MAX_REFUSAL_BODY_BYTES)
          finish({ status, ok: false, message: CALLBACK_FAILURE_MESSAGES.status(status), ...(body.length === 0 ? {} : { body }) })
        }
        onRefused = done
        refusalTimer = setTimeout(done, REFUSAL_BODY_WAIT_MS)
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk)
          size += chunk.length
          if (size >= MAX_REFUSAL_BODY_BYTES) done()
        })
        res.on('end', done)
        res.on('error', done)
        return
      }
      const lengthHeader = res.headers['content-length']
      const contentLength = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined
      if (contentLength === undefined || contentLength > MAX_CALLBACK_REPLY_BYTES) {
        return finish({ status, ...(contentLength === undefined ? {} : { contentLength }), ok: false, message: CALLBACK_FAILURE_MESSAGES.length })
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= MAX_CALLBACK_REPLY_BYTES) chunks.push(chunk)
      })
      res.on('error', () => finish({ status, contentLength, ok: false, message: CALLBACK_FAILURE_MESSAGES.connect }))
      res.on('end', () => {
        const data = Buffer.concat(chunks)
        // A UTF-8 BOM is not JSON to OSS, although some parsers skip it.
        const json = data[0] !== 0xef && isJson(data)
        finish(json
          ? { status, contentLength, body: data, ok: true }
          : { status, contentLength, body: data, ok: false, message: CALLBACK_FAILURE_MESSAGES.notJson })
      })
    })
    req.end(body)
  })
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function isJson (data: Buffer): boolean {
  try {
    JSON.parse(utf8.decode(data))
    return true
  } catch {
    return false
  }
}

/**
 * Builds, signs and sends a callback as OSS does, trying each URL in order until
 * one answers as OSS requires: status 200 (no redirect followed), within the
 * timeout, a `Content-Length` of at most 1 MB, a JSON body without BOM. The
 * signature comes from the shared string-to-sign and signer, over the path and
 * query of the URL as sent.
 */
export async function dispatchCallback (param: DecodedCallbackParam, values: CallbackBodyValues, ctx: DispatchContext): Promise<DispatchResult> {
  const sentBody = buildCallbackBody(param.template, values, param.bodyType)
  const body = Buffer.from(sentBody, 'utf8')
  const contentMd5 = createHash('md5').update(body).digest('base64')
  const attempts: CallbackAttempt[] = []
  for (const url of param.urls) {
    const target = `${url.pathname}${url.search}`
    const authorization = signCallback(ctx.privateKey, buildStringToSign(splitRequestTarget(target), body))
    const headers: Record<string, string> = {
      Host: param.host ?? url.host,
      'Content-Type': param.contentType,
      'Content-Length': String(body.length),
      'Content-MD5': contentMd5,
      Date: ctx.now().toUTCString(),
      'User-Agent': 'aliyun-oss-callback',
      Authorization: authorization,
      'x-oss-pub-key-url': Buffer.from(ctx.publicKeyUrl, 'utf8').toString('base64'),
      'x-oss-request-id': ctx.requestId,
      'x-oss-bucket': ctx.bucket,
      'x-oss-owner': ctx.ownerId,
      'x-oss-requester': ctx.ownerId,
      'x-oss-signature-version': '1.0',
      'x-oss-tag': 'CALLBACK',
      Connection: 'close'
    }
    const result = await attempt(url, body, headers, param, ctx)
    attempts.push(result)
    if (result.ok) return { ok: true, body: result.body ?? Buffer.alloc(0), attempts, sentBody }
  }
  return { ok: false, message: attempts.at(-1)?.message ?? CALLBACK_FAILURE_MESSAGES.connect, attempts, sentBody }
}
