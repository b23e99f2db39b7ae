import { EventEmitter } from 'node:events'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { Transform } from 'node:stream'
import OSS from 'ali-oss'
import { encodeUploadCallback, type UploadCallbackParam } from './callback.js'
import { effectivePartSize, resolveUploadOptions, type ResolvedUploadOptions, type UploadOptions } from './options.js'
import { postObject } from './post-object.js'
import type { ProgressListener } from './progress.js'
import { unquoteEtag, type UploadFailed, type UploadOperation, type UploadResult, type UploadStep } from './result.js'

/** What tests and embedders inject into {@link upload}. */
export interface UploadDependencies {
  /** Called as the upload advances. Default: no progress reporting. */
  onProgress?: ProgressListener
  /** `fetch` for PostObject. Default: the global one. */
  fetch?: typeof fetch
  /** Clock for the PostObject policy and its signature. Default: `() => new Date()`. */
  now?: () => Date
  /**
   * Cancels the upload: a PutObject or PostObject request is dropped, a multipart
   * upload starts no more parts and is aborted. The result is then `failed` with the
   * message {@link CANCELLED_MESSAGE}. Default: not cancellable.
   */
  signal?: AbortSignal
}

/** The message of a cancelled upload's result. */
export const CANCELLED_MESSAGE = 'cancelled; nothing stored'

/** What each upload path needs besides the options. */
interface Run {
  onProgress: ProgressListener
  signal: AbortSignal | undefined
}

function cancelled (o: ResolvedUploadOptions, operation: UploadStep): UploadFailed {
  return { outcome: 'failed', exitCode: 1, operation, bucket: o.bucket, key: o.key, message: CANCELLED_MESSAGE }
}

/** A response as ali-oss's HTTP client (urllib) returns it. */
interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  data?: unknown
}

interface UrllibLike {
  request: (url: string, args: unknown) => Promise<RawResponse>
}

/** The error ali-oss throws: OSS's XML error read into fields, or a network error with status -1/-2. */
interface AliOssError {
  name?: string
  message?: string
  status?: number
  code?: string
  requestId?: string
  ecCode?: string
}

function header (res: RawResponse | undefined, name: string): string | undefined {
  const v = res?.headers[name]
  return Array.isArray(v) ? v[0] : v
}

function bodyText (res: RawResponse | undefined): string {
  const data = res?.data
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (typeof data === 'string') return data
  return ''
}

interface Client {
  client: OSS
  /** The last raw response. */
  last: () => RawResponse | undefined
  /** Closes the last request's connection and resolves once it is closed. */
  dropConnection: () => Promise<void>
}

/**
 * An ali-oss client that keeps the last raw response. ali-oss turns a 203 into an
 * error that has OSS's XML fields but not the response headers, and the 203 message
 * must carry the ETag; on success the relayed reply is printed as sent, not re-serialised.
 */
function createClient (o: ResolvedUploadOptions): Client {
  const client = new OSS({
    accessKeyId: o.accessKeyId,
    accessKeySecret: o.accessKeySecret,
    ...(o.securityToken === undefined
      // Without a refresh interval ali-oss warns on the console about STS refresh, which a one-shot upload does not need.
      ? {}
      : { stsToken: o.securityToken, refreshSTSTokenInterval: 3_600_000 }),
    bucket: o.bucket,
    endpoint: o.endpoint.origin,
    // ali-oss builds the virtual-hosted `Host` of an IP endpoint from this: `<bucket>.oss-<region>.aliyuncs.com`.
    region: `oss-${o.region}`,
    secure: o.endpoint.protocol === 'https:',
    // ali-oss sends `<bucket>.<host>` for any host name, and `<bucket>.localhost` does not resolve: path style there.
    sldEnable: o.endpoint.hostname === 'localhost',
    authorizationV4: o.signatureVersion === 4,
    timeout: o.requestTimeoutMs
  } as OSS.Options) // sldEnable is an ali-oss option its type definitions do not list
  const holder = client as unknown as { urllib: UrllibLike }
  const inner = holder.urllib
  let last: RawResponse | undefined
  let socket: Socket | undefined
  holder.urllib = {
    async request (url, args) {
      // urllib reports the request's socket only through this emitter.
      const emitter = new EventEmitter()
      emitter.once('response', (event: { req?: { socket?: Socket } }) => { socket = event.req?.socket })
      const res = await inner.request(url, { ...(args as object), emitter })
      last = res
      return res
    }
  }
  const dropConnection = async (): Promise<void> => {
    const s = socket
    if (s === undefined || s.closed) return
    await new Promise<void>((resolve) => {
      // urllib's second callback ("callback twice" warning) comes on ticks after the close: let it pass first.
      s.once('close', () => setImmediate(resolve))
      s.destroy()
    })
  }
  return { client, last: () => last, dropConnection }
}

// Headers, not ali-oss's `callback` option: that option checks nothing and passes the URL
// through encodeURI, which turns an escape already in it (`%20`) into `%2520`.
function callbackHeaders (cb: UploadCallbackParam): Record<string, string> {
  return { 'x-oss-callback': cb.callback, ...(cb.callbackVar === undefined ? {} : { 'x-oss-callback-var': cb.callbackVar }) }
}

interface Attempt {
  operation: UploadOperation
  sizeBytes: number
  parts?: number
}

/** Maps what the final request (PutObject or CompleteMultipartUpload) produced to a result. */
function finalResult (o: ResolvedUploadOptions, attempt: Attempt, res: RawResponse | undefined, err: AliOssError | undefined): UploadResult {
  const receipt = {
    operation: attempt.operation,
    bucket: o.bucket,
    key: o.key,
    sizeBytes: attempt.sizeBytes,
    ...(attempt.parts === undefined ? {} : { parts: attempt.parts })
  }
  const etag = unquoteEtag(header(res, 'etag'))
  const crc64 = header(res, 'x-oss-hash-crc64ecma')
  const requestId = header(res, 'x-oss-request-id') ?? err?.requestId
  const fromHeaders = {
    ...(etag === undefined ? {} : { etag }),
    ...(crc64 === undefined ? {} : { crc64 }),
    ...(requestId === undefined ? {} : { requestId })
  }
  if (err === undefined && res?.status === 200) {
    return { outcome: 'callback-ok', exitCode: 0, httpStatus: 200, ...receipt, ...fromHeaders, reply: bodyText(res) }
  }
  if (err !== undefined && err.status === 203 && res?.status === 203) {
    return {
      outcome: 'callback-failed',
      exitCode: 2,
      httpStatus: 203,
      ...receipt,
      ...fromHeaders,
      ossCode: err.code ?? 'CallbackFailed',
      reason: err.message ?? '',
      ...(err.ecCode === undefined ? {} : { ec: err.ecCode })
    }
  }
  return failure(o, attempt.operation, err ?? { message: `OSS answered HTTP ${res?.status ?? '?'} with a reply that is not a callback reply` }, res)
}

function failure (o: ResolvedUploadOptions, operation: UploadStep | undefined, err: AliOssError, res?: RawResponse): UploadFailed {
  const httpStatus = typeof err.status === 'number' ? (err.status > 0 ? err.status : undefined) : (res !== undefined && res.status > 0 ? res.status : undefined)
  const requestId = err.requestId ?? (res !== undefined && res.status === httpStatus ? header(res, 'x-oss-request-id') : undefined)
  // A network error carries urllib's name (RequestError, ConnectionTimeoutError) as its code, and ali-oss
  // names a body-less 404 "NoSuchKey": neither is a code OSS sent.
  const bodyless = res !== undefined && res.status === httpStatus && bodyText(res) === ''
  const ossCode = httpStatus === undefined || bodyless ? undefined : err.code
  // urllib appends the request and its agent's socket counts to the message: keep what happened.
  const message = bodyless
    ? `OSS answered HTTP ${httpStatus} with no error body`
    : (String(err.message ?? err.name ?? 'unknown error').split('\n')[0] as string).replace(/, (?:GET|PUT|POST|DELETE|HEAD) https?:\/\/\S+ -?\d+ \(connected: .*$/, '')
  return {
    outcome: 'failed',
    exitCode: 1,
    ...(operation === undefined ? {} : { operation }),
    bucket: o.bucket,
    key: o.key,
    ...(httpStatus === undefined ? {} : { httpStatus }),
    ...(ossCode === undefined ? {} : { ossCode }),
    message,
    ...(requestId === undefined ? {} : { requestId })
  }
}

async function putObject (o: ResolvedUploadOptions, cb: UploadCallbackParam, sizeBytes: number, { onProgress, signal }: Run): Promise<UploadResult> {
  const { client, last, dropConnection } = createClient(o)
  let loaded = 0
  onProgress({ loadedBytes: 0, totalBytes: sizeBytes })
  const counter = new Transform({
    transform (chunk: Buffer, _enc, done) {
      loaded += chunk.length
      onProgress({ loadedBytes: loaded, totalBytes: sizeBytes })
      done(null, chunk)
    }
  })
  const source = createReadStream(o.file)
  source.on('error', (err) => counter.destroy(err))
  const onAbort = (): void => { source.destroy(new Error(CANCELLED_MESSAGE)) }
  signal?.addEventListener('abort', onAbort, { once: true })
  const attempt: Attempt = { operation: 'PutObject', sizeBytes }
  try {
    await client.putStream(o.key, source.pipe(counter), {
      contentLength: sizeBytes,
      ...(o.contentType === undefined ? {} : { mime: o.contentType }),
      headers: callbackHeaders(cb),
      timeout: o.requestTimeoutMs
    } as unknown as OSS.PutStreamOptions)
    return finalResult(o, attempt, last(), undefined)
  } catch (err) {
    // OSS may refuse (a bad signature) before it has read the body. The request is then still
    // streaming: end it here, or its half-sent body keeps the connection, and the process, alive.
    if (!counter.readableEnded) {
      counter.destroy()
      await dropConnection()
    }
    source.destroy()
    // Once the request is dropped OSS has no body to store; a reply that came first still counts.
    if (signal?.aborted === true && last()?.status !== 203) return cancelled(o, 'PutObject')
    return finalResult(o, attempt, last(), err as AliOssError)
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/** Runs `job(1..total)` with at most `parallel` at once; after a failure, starts no more and rethrows the first error. */
async function runParts (total: number, parallel: number, signal: AbortSignal | undefined, job: (partNo: number) => Promise<void>): Promise<void> {
  let next = 1
  let failed: { err: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (failed === undefined && signal?.aborted !== true && next <= total) {
      const partNo = next++
      try {
        await job(partNo)
      } catch (err) {
        failed ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, total) }, worker))
  if (failed !== undefined) throw failed.err
}

/**
 * Multipart upload from ali-oss's own steps (initiate, upload part, complete).
 * ali-oss's `multipartUpload` would send the callback headers with every
 * request, the initiate and each part included; OSS reads them on
 * CompleteMultipartUpload only, so they go there alone. A failed upload is
 * aborted so that no parts are left behind (billed) in the bucket.
 */
async function multipartUpload (o: ResolvedUploadOptions, cb: UploadCallbackParam, sizeBytes: number, { onProgress, signal }: Run): Promise<UploadResult> {
  const { client, last } = createClient(o)
  const partSize = effectivePartSize(sizeBytes, o.partSizeBytes)
  const partsTotal = Math.max(1, Math.ceil(sizeBytes / partSize))
  let uploadId: string
  try {
    const init = await client.initMultipartUpload(o.key, {
      ...(o.contentType === undefined ? {} : { mime: o.contentType }),
      timeout: o.requestTimeoutMs
    } as OSS.InitMultipartUploadOptions)
    uploadId = init.uploadId
  } catch (err) {
    return failure(o, 'InitiateMultipartUpload', err as AliOssError)
  }

  const parts: Array<{ number: number, etag: string }> = []
  let loaded = 0
  onProgress({ loadedBytes: 0, totalBytes: sizeBytes, partsDone: 0, partsTotal })
  try {
    await runParts(partsTotal, o.parallelParts, signal, async (partNo) => {
      const start = (partNo - 1) * partSize
      const end = Math.min(start + partSize, sizeBytes)
      const res = await client.uploadPart(o.key, uploadId, partNo, o.file, start, end, { timeout: o.requestTimeoutMs })
      parts.push({ number: partNo, etag: res.etag })
      loaded += end - start
      onProgress({ loadedBytes: loaded, totalBytes: sizeBytes, partsDone: parts.length, partsTotal })
    })
  } catch (err) {
    await client.abortMultipartUpload(o.key, uploadId).catch(() => undefined)
    return failure(o, 'UploadPart', err as AliOssError)
  }
  // Parts in flight when the signal came have finished; none started after it.
  if (signal?.aborted === true) {
    await client.abortMultipartUpload(o.key, uploadId).catch(() => undefined)
    return cancelled(o, 'UploadPart')
  }

  const attempt: Attempt = { operation: 'CompleteMultipartUpload', sizeBytes, parts: partsTotal }
  try {
    await client.completeMultipartUpload(o.key, uploadId, parts, { headers: callbackHeaders(cb), timeout: o.requestTimeoutMs })
    return finalResult(o, attempt, last(), undefined)
  } catch (err) {
    const e = err as AliOssError
    // A refused complete leaves the upload open; a 203 means the object is stored.
    if (e.status !== 203) await client.abortMultipartUpload(o.key, uploadId).catch(() => undefined)
    return finalResult(o, attempt, last(), e)
  }
}

/**
 * Uploads a file with an upload callback: PutObject below the multipart threshold,
 * a multipart upload (parallel parts, the callback on CompleteMultipartUpload) from
 * it on, or a PostObject form with `post`. Options are checked before anything is
 * sent: a bad option throws `OSS_CB_ERR_INVALID_OPTION` or
 * `OSS_CB_ERR_INVALID_CALLBACK_PARAM`. Every outcome after that is returned, not
 * thrown: `exitCode` 0 when the callback answered (the relayed JSON in `reply`),
 * 2 when OSS answered 203 (stored, callback failed), 1 for any other failure.
 */
export async function upload (options: UploadOptions, deps: UploadDependencies = {}): Promise<UploadResult> {
  const o = resolveUploadOptions(options)
  const cb = encodeUploadCallback(o.callback)
  const run: Run = { onProgress: deps.onProgress ?? (() => {}), signal: deps.signal }

  let sizeBytes: number
  try {
    const st = await stat(o.file)
    if (!st.isFile()) return failure(o, undefined, { message: `${o.file} is not a regular file` })
    sizeBytes = st.size
  } catch (err) {
    return failure(o, undefined, { message: `cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` })
  }

  // A function, so that TypeScript does not take the first check as true for the whole body.
  const aborted = (): boolean => run.signal?.aborted === true
  if (aborted()) return cancelled(o, o.post ? 'PostObject' : 'PutObject')
  if (o.post) {
    const result = await postObject(o, cb, sizeBytes, { fetch: deps.fetch ?? fetch, now: deps.now ?? (() => new Date()), ...run })
    return result.outcome === 'failed' && aborted() && result.httpStatus === undefined ? cancelled(o, 'PostObject') : result
  }
  if (sizeBytes > 0 && sizeBytes >= o.multipartThresholdBytes) return await multipartUpload(o, cb, sizeBytes, run)
  return await putObject(o, cb, sizeBytes, run)
}
