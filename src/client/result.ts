import { XMLParser } from 'fast-xml-parser'

/** The request that stored (or tried to store) the object. */
export type UploadOperation = 'PutObject' | 'CompleteMultipartUpload' | 'PostObject'

/** The request an upload failed on. */
export type UploadStep = UploadOperation | 'InitiateMultipartUpload' | 'UploadPart'

/** What every outcome says about the upload. */
export interface UploadReceipt {
  operation: UploadOperation
  bucket: string
  key: string
  /** Bytes sent. */
  sizeBytes: number
  /** Parts of a multipart upload. */
  parts?: number
  /** Upper-case hex, no quotes, as OSS's `ETag` header gave it. */
  etag?: string
  /** `x-oss-hash-crc64ecma`, unsigned decimal. */
  crc64?: string
  /** `x-oss-request-id`. */
  requestId?: string
}

/** OSS stored the object and relayed the callback server's JSON (HTTP 200). */
export interface UploadSucceeded extends UploadReceipt {
  outcome: 'callback-ok'
  exitCode: 0
  httpStatus: 200
  /** The callback server's reply exactly as OSS relayed it (UTF-8 text, JSON). */
  reply: string
}

/** OSS stored the object but the callback failed (HTTP 203 `CallbackFailed`); OSS never retries. */
export interface UploadCallbackFailed extends UploadReceipt {
  outcome: 'callback-failed'
  exitCode: 2
  httpStatus: 203
  /** OSS's `Code`, normally `CallbackFailed`. */
  ossCode: string
  /** OSS's `Message`, e.g. `Error status : 301.` */
  reason: string
  /** OSS's `EC`, e.g. `0007-00000203`. */
  ec?: string
}

/** The upload failed: OSS refused it, the network failed, or the reply made no sense. */
export interface UploadFailed {
  outcome: 'failed'
  exitCode: 1
  /** The request that failed; absent when nothing was sent (an unreadable file). */
  operation?: UploadStep
  bucket: string
  key: string
  /** HTTP status of OSS's answer, when there was one. */
  httpStatus?: number
  /** OSS's error `Code` (`SignatureDoesNotMatch`, `NoSuchBucket`, …) or a network error code (`ECONNREFUSED`). */
  ossCode?: string
  message: string
  requestId?: string
}

/** The outcome of `upload()`, with the process exit code the CLI uses for it. */
export type UploadResult = UploadSucceeded | UploadCallbackFailed | UploadFailed

/** The fields of OSS's XML error body. */
export interface OssErrorBody {
  code?: string
  message?: string
  requestId?: string
  hostId?: string
  ec?: string
}

const xml = new XMLParser({ parseTagValue: false, trimValues: true, processEntities: true })

function text (v: unknown): string | undefined {
  if (typeof v === 'string' && v !== '') return v
  if (typeof v === 'number') return String(v)
  return undefined
}

/** Reads `<Error><Code>…</Code><Message>…</Message>…</Error>`; `undefined` when the text is not such a document. */
export function parseOssErrorXml (body: string): OssErrorBody | undefined {
  let doc: unknown
  try {
    doc = xml.parse(body)
  } catch {
    return undefined
  }
  const err = (doc as { Error?: unknown } | null)?.Error
  if (err === null || typeof err !== 'object') return undefined
  const e = err as Record<string, unknown>
  const out: OssErrorBody = {}
  const code = text(e.Code)
  const message = text(e.Message)
  const requestId = text(e.RequestId)
  const hostId = text(e.HostId)
  const ec = text(e.EC)
  if (code !== undefined) out.code = code
  if (message !== undefined) out.message = message
  if (requestId !== undefined) out.requestId = requestId
  if (hostId !== undefined) out.hostId = hostId
  if (ec !== undefined) out.ec = ec
  return out
}

/** `"ABC"` → `ABC`; OSS's ETag header carries quotes, the callback's `${etag}` does not. */
export function unquoteEtag (etag: string | undefined): string | undefined {
  if (etag === undefined || etag === '') return undefined
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1')
}

/** The one-line stderr summary of a result. Never includes credentials or the reply body. */
export function describeResult (result: UploadResult): string {
  const where = `key ${JSON.stringify(result.key)} in bucket ${result.bucket}`
  switch (result.outcome) {
    case 'callback-ok':
      return `stored ${where} (${result.operation}, ${result.sizeBytes} bytes${result.parts === undefined ? '' : `, ${result.parts} parts`}, ETag ${result.etag ?? '?'}); callback answered`
    case 'callback-failed':
      return `object stored, callback failed: ${result.reason} (${result.ossCode}${result.ec === undefined ? '' : ` ${result.ec}`}; ${where}, ETag ${result.etag ?? '?'}` +
        `${result.requestId === undefined ? '' : `, request ${result.requestId}`}). OSS does not retry the callback.`
    case 'failed':
      return `upload failed: ${result.ossCode === undefined ? '' : `${result.ossCode}: `}${result.message}` +
        ` (${result.operation === undefined ? '' : `${result.operation}, `}${result.httpStatus === undefined ? 'no HTTP answer' : `HTTP ${result.httpStatus}`}; ${where}` +
        `${result.requestId === undefined ? '' : `, request ${result.requestId}`})`
  }
}
