import { openAsBlob } from 'node:fs'
import { isIP } from 'node:net'
import { buildPostPolicy, signPostPolicy, type PostPolicy } from '../protocol/post-policy.js'
import type { UploadCallbackParam } from './callback.js'
import type { ResolvedUploadOptions } from './options.js'
import type { ProgressListener } from './progress.js'
import { parseOssErrorXml, unquoteEtag, type UploadResult } from './result.js'

/** How long a PostObject policy stays valid after it is signed, in seconds. */
export const POST_POLICY_TTL_SECONDS = 15 * 60

/** The form fields of a PostObject upload, in the order they are sent (`file` goes last, after these). */
export type PostFormFields = Array<[string, string]>

/**
 * Builds and signs the PostObject form as a browser app server would, with the
 * shared policy functions: the policy pins the bucket, the exact key, the exact
 * size, the `Content-Type`, the `callback` field and every `x:` variable, so that
 * the signed form cannot be reused for another object or callback; the expiry is
 * in UTC. The client adds what only an uploader sends: `success_action_status`
 * and, with STS credentials, `x-oss-security-token`, both pinned too.
 */
export function buildPostForm (o: ResolvedUploadOptions, cb: UploadCallbackParam, sizeBytes: number, now: Date, contentType: string): { policy: PostPolicy, fields: PostFormFields } {
  const base = buildPostPolicy({
    now,
    expiresInSeconds: POST_POLICY_TTL_SECONDS,
    bucket: o.bucket,
    key: o.key,
    minSizeBytes: sizeBytes,
    maxSizeBytes: sizeBytes,
    contentTypes: [contentType],
    callback: cb.callback,
    vars: cb.vars
  })
  const extra: Array<[string, string]> = [['success_action_status', '200']]
  if (o.securityToken !== undefined) extra.push(['x-oss-security-token', o.securityToken])
  base.conditions.push(...extra.map(([name, value]) => ({ [name]: value })))
  const signed = signPostPolicy(base, { accessKeyId: o.accessKeyId, accessKeySecret: o.accessKeySecret, region: o.region }, o.signatureVersion === 4 ? 'v4' : 'v1', now)
  const fields: PostFormFields = [
    ['key', o.key],
    ...Object.entries(signed.fields),
    ...extra,
    ['Content-Type', contentType],
    ['callback', cb.callback],
    ...Object.entries(cb.vars)
  ]
  return { policy: signed.policy, fields }
}

/**
 * The URL a browser posts to: `https://<bucket>.<endpoint host>/` (virtual-hosted,
 * what OSS expects), or `http://<ip>:<port>/<bucket>` for an IP or `localhost`
 * endpoint (the simulator), where no `<bucket>.` host name exists and fetch cannot set `Host`.
 */
export function postUrl (endpoint: URL, bucket: string): string {
  if (isIP(endpoint.hostname.replace(/^\[|\]$/g, '')) !== 0 || endpoint.hostname === 'localhost') return `${endpoint.origin}/${bucket}`
  return `${endpoint.protocol}//${bucket}.${endpoint.host}/`
}

/**
 * Uploads with a PostObject form. ali-oss has no PostObject (it signs requests
 * for servers; the form is what browsers send), so the form is built here, signed
 * with the project's V1/V4 signing functions, and sent with `fetch` and `FormData`.
 */
export async function postObject (
  o: ResolvedUploadOptions,
  cb: UploadCallbackParam,
  sizeBytes: number,
  deps: { fetch: typeof fetch, now: () => Date, onProgress: ProgressListener, signal?: AbortSignal | undefined }
): Promise<UploadResult> {
  const contentType = o.contentType ?? 'application/octet-stream'
  const { fields } = buildPostForm(o, cb, sizeBytes, deps.now(), contentType)
  const form = new FormData()
  for (const [name, value] of fields) form.append(name, value)
  form.append('file', await openAsBlob(o.file, { type: contentType }), o.key.split('/').pop() ?? 'file')

  const base = { bucket: o.bucket, key: o.key }
  deps.onProgress({ loadedBytes: 0, totalBytes: sizeBytes })
  let res: Response
  let text: string
  try {
    res = await deps.fetch(postUrl(o.endpoint, o.bucket), { method: 'POST', body: form, redirect: 'manual', signal: deps.signal === undefined ? AbortSignal.timeout(o.requestTimeoutMs) : AbortSignal.any([AbortSignal.timeout(o.requestTimeoutMs), deps.signal]) })
    text = await res.text()
  } catch (err) {
    const e = err as Error & { cause?: { code?: string, message?: string } }
    const detail = e.name === 'TimeoutError' ? `no answer within ${o.requestTimeoutMs} ms` : `${e.message}${e.cause?.message === undefined ? '' : `: ${e.cause.message}`}`
    return { outcome: 'failed', exitCode: 1, operation: 'PostObject', ...base, message: detail }
  }
  deps.onProgress({ loadedBytes: sizeBytes, totalBytes: sizeBytes })

  const etag = unquoteEtag(res.headers.get('etag') ?? undefined)
  const crc64 = res.headers.get('x-oss-hash-crc64ecma') ?? undefined
  const headerRequestId = res.headers.get('x-oss-request-id') ?? undefined
  const receipt = {
    operation: 'PostObject' as const,
    ...base,
    sizeBytes,
    ...(etag === undefined ? {} : { etag }),
    ...(crc64 === undefined ? {} : { crc64 }),
    ...(headerRequestId === undefined ? {} : { requestId: headerRequestId })
  }
  if (res.status === 200) return { outcome: 'callback-ok', exitCode: 0, httpStatus: 200, ...receipt, reply: text }
  const error = parseOssErrorXml(text)
  const requestId = headerRequestId ?? error?.requestId
  if (res.status === 203) {
    return {
      outcome: 'callback-failed',
      exitCode: 2,
      httpStatus: 203,
      ...receipt,
      ...(requestId === undefined ? {} : { requestId }),
      ossCode: error?.code ?? 'CallbackFailed',
      reason: error?.message ?? '',
      ...(error?.ec === undefined ? {} : { ec: error.ec })
    }
  }
  return {
    outcome: 'failed',
    exitCode: 1,
    operation: 'PostObject',
    ...base,
    httpStatus: res.status,
    ...(error?.code === undefined ? {} : { ossCode: error.code }),
    message: error?.message ?? `OSS answered HTTP ${res.status}`,
    ...(requestId === undefined ? {} : { requestId })
  }
}
