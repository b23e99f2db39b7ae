import { basename } from 'node:path'
import { invalidOption } from '../errors.js'
import { defaultCallbackBody } from '../protocol/callback-param.js'
import { wholeNumberOption } from '../options.js'

/** How the uploader signs its requests: V4 (`OSS4-HMAC-SHA256`, OSS's current scheme) or V1 (HMAC-SHA1). */
export type SignatureVersion = 1 | 4

/** The callback OSS makes once the object is stored. */
export interface UploadCallbackOptions {
  /** One URL or up to 5 separated by `;`, tried in order by OSS. */
  url: string
  /**
   * Body template with `${bucket}`, `${object}`, …, `${x:name}` placeholders.
   * Default: `defaultCallbackBody(bodyType, vars)` from the callback parameter module:
   * the common system variables and every custom variable.
   */
  body?: string
  /** `json` (`application/json`) or `form` (`application/x-www-form-urlencoded`). Default `json`. */
  bodyType?: 'json' | 'form'
  /** `Host` header OSS sends with the callback. Default: the URL's host. */
  host?: string
  /** Ask OSS to send TLS SNI to an https callback URL. Default false. */
  sni?: boolean
  /** Custom variables, `name -> value`; the `x:` prefix is added when missing. Default none. */
  vars?: Readonly<Record<string, string>>
}

/** Options of `upload()`. */
export interface UploadOptions {
  /** Path of the file to upload. */
  file: string
  /** OSS endpoint with its scheme: `https://oss-cn-hangzhou.aliyuncs.com`, or `http://127.0.0.1:8090` for the simulator. */
  endpoint: string
  bucket: string
  /** Object key. Default: the file's base name. */
  key?: string
  accessKeyId: string
  accessKeySecret: string
  /** STS security token, sent as `x-oss-security-token`. Default none. */
  securityToken?: string
  /**
   * Region id, `cn-hangzhou` or `oss-cn-hangzhou`. Default: read from an
   * `oss-<region>[-internal].aliyuncs.com` endpoint; required for any other endpoint.
   */
  region?: string
  /** Default 4. */
  signatureVersion?: SignatureVersion
  callback: UploadCallbackOptions
  /** Upload with a PostObject form, as a browser would, instead of PutObject or multipart. Default false. */
  post?: boolean
  /** Files of at least this many bytes go up as multipart uploads. Default 100 MiB. Not used with `post`. */
  multipartThresholdBytes?: number
  /** Part size of multipart uploads, at least 100 KiB, raised when the file would need over 10 000 parts. Default 8 MiB. */
  partSizeBytes?: number
  /** Parts uploaded at the same time. Default 4. */
  parallelParts?: number
  /** `Content-Type` of the object. Default: guessed from the key by ali-oss; `application/octet-stream` for `post`. */
  contentType?: string
  /** Timeout of each request to OSS, in ms. Covers the callback, which OSS makes before it answers. Default 60 000. */
  requestTimeoutMs?: number
}

/** Defaults of {@link UploadOptions}. */
export const UPLOAD_DEFAULTS = Object.freeze({
  multipartThresholdBytes: 100 * 1024 * 1024,
  partSizeBytes: 8 * 1024 * 1024,
  parallelParts: 4,
  signatureVersion: 4 as SignatureVersion,
  bodyType: 'json' as const,
  requestTimeoutMs: 60_000
})

/** OSS's multipart limits: every part but the last at least 100 KiB, at most 5 GiB, at most 10 000 parts. */
export const MIN_PART_SIZE_BYTES = 100 * 1024
export const MAX_PART_SIZE_BYTES = 5 * 1024 * 1024 * 1024
export const MAX_PARTS = 10_000

/** {@link UploadOptions} checked, with every default applied. */
export interface ResolvedUploadOptions {
  file: string
  endpoint: URL
  bucket: string
  key: string
  accessKeyId: string
  accessKeySecret: string
  securityToken?: string
  /** Without the `oss-` prefix (`cn-hangzhou`). */
  region: string
  signatureVersion: SignatureVersion
  callback: Required<Pick<UploadCallbackOptions, 'url' | 'body' | 'bodyType' | 'sni'>> & { host?: string, vars: Record<string, string> }
  post: boolean
  multipartThresholdBytes: number
  partSizeBytes: number
  parallelParts: number
  contentType?: string
  requestTimeoutMs: number
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/
const REGION_ID = /^[a-z0-9]+(?:-[a-z0-9]+)*$/
const ENDPOINT_REGION = /^oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$/

/** `cn-hangzhou` from `cn-hangzhou` or `oss-cn-hangzhou`; throws on anything else. */
export function normalizeRegion (region: string): string {
  const bare = region.startsWith('oss-') ? region.slice(4) : region
  if (!REGION_ID.test(bare)) throw invalidOption(`region: ${JSON.stringify(region)} is not a region id such as cn-hangzhou or oss-cn-hangzhou`)
  return bare
}

function nonEmpty (name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalidOption(`${name}: required`)
  return value
}

/**
 * Checks every option once, before anything is sent, and applies the defaults.
 * Throws `OSS_CB_ERR_INVALID_OPTION` saying which option and why. The callback
 * parameter itself is checked by the encoder (`OSS_CB_ERR_INVALID_CALLBACK_PARAM`).
 */
export function resolveUploadOptions (options: UploadOptions): ResolvedUploadOptions {
  const file = nonEmpty('file', options.file)

  let endpoint: URL
  try {
    endpoint = new URL(nonEmpty('endpoint', options.endpoint))
  } catch (err) {
    if ((err as { code?: string }).code === 'OSS_CB_ERR_INVALID_OPTION') throw err
    throw invalidOption('endpoint: not a URL; give the scheme too, e.g. https://oss-cn-hangzhou.aliyuncs.com')
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') throw invalidOption('endpoint: must be an http:// or https:// URL')
  if (endpoint.username !== '' || endpoint.password !== '' || (endpoint.pathname !== '/' && endpoint.pathname !== '') || endpoint.search !== '' || endpoint.hash !== '') {
    throw invalidOption('endpoint: must be a scheme, host and optional port only')
  }

  const bucket = nonEmpty('bucket', options.bucket)
  if (!BUCKET_NAME.test(bucket)) throw invalidOption('bucket: 3 to 63 characters, lower-case letters, digits and "-", not starting or ending with "-"')

  const key = options.key ?? basename(file)
  const keyBytes = Buffer.byteLength(key, 'utf8')
  if (keyBytes === 0 || keyBytes > 1023) throw invalidOption('key: must be 1 to 1023 bytes of UTF-8')
  if (key.startsWith('/') || key.startsWith('\\')) throw invalidOption('key: must not start with "/" or "\\"')

  const accessKeyId = nonEmpty('accessKeyId (OSS_ACCESS_KEY_ID)', options.accessKeyId)
  const accessKeySecret = nonEmpty('accessKeySecret (OSS_ACCESS_KEY_SECRET)', options.accessKeySecret)
  if (options.securityToken !== undefined) nonEmpty('securityToken (OSS_SESSION_TOKEN)', options.securityToken)

  let region: string
  if (options.region !== undefined) region = normalizeRegion(options.region)
  else {
    const m = ENDPOINT_REGION.exec(endpoint.hostname)
    if (m?.[1] === undefined) throw invalidOption('region: required for an endpoint that does not name one (give e.g. cn-hangzhou)')
    region = m[1]
  }

  const signatureVersion = options.signatureVersion ?? UPLOAD_DEFAULTS.signatureVersion
  if (signatureVersion !== 1 && signatureVersion !== 4) throw invalidOption('signatureVersion: must be 1 or 4')

  const cb = options.callback
  if (cb === undefined || cb === null) throw invalidOption('callback: required')
  const bodyType = cb.bodyType ?? UPLOAD_DEFAULTS.bodyType
  if (bodyType !== 'json' && bodyType !== 'form') throw invalidOption('callback.bodyType: must be json or form')
  const vars: Record<string, string> = {}
  for (const [name, value] of Object.entries(cb.vars ?? {})) {
    if (typeof value !== 'string') throw invalidOption(`callback.vars: the value of ${JSON.stringify(name)} must be a string`)
    vars[name] = value
  }
  const body = cb.body ?? defaultCallbackBody(bodyType, Object.keys(vars))
  if (cb.sni !== undefined && typeof cb.sni !== 'boolean') throw invalidOption('callback.sni: must be a boolean')

  const post = options.post ?? false
  if (typeof post !== 'boolean') throw invalidOption('post: must be a boolean')
  const multipartThresholdBytes = wholeNumberOption('multipartThresholdBytes', options.multipartThresholdBytes, UPLOAD_DEFAULTS.multipartThresholdBytes)
  const partSizeBytes = wholeNumberOption('partSizeBytes', options.partSizeBytes, UPLOAD_DEFAULTS.partSizeBytes, { min: MIN_PART_SIZE_BYTES, max: MAX_PART_SIZE_BYTES })
  const parallelParts = wholeNumberOption('parallelParts', options.parallelParts, UPLOAD_DEFAULTS.parallelParts, { min: 1, max: 64 })
  const requestTimeoutMs = wholeNumberOption('requestTimeoutMs', options.requestTimeoutMs, UPLOAD_DEFAULTS.requestTimeoutMs, { min: 1000, max: 3_600_000 })
  if (options.contentType !== undefined && !/^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(?:\s*;.*)?$/.test(options.contentType)) {
    throw invalidOption('contentType: must be a media type such as image/png')
  }

  return {
    file,
    endpoint,
    bucket,
    key,
    accessKeyId,
    accessKeySecret,
    ...(options.securityToken === undefined ? {} : { securityToken: options.securityToken }),
    region,
    signatureVersion,
    callback: {
      url: nonEmpty('callback.url', cb.url),
      body,
      bodyType,
      ...(cb.host === undefined ? {} : { host: cb.host }),
      sni: cb.sni ?? false,
      vars
    },
    post,
    multipartThresholdBytes,
    partSizeBytes,
    parallelParts,
    ...(options.contentType === undefined ? {} : { contentType: options.contentType }),
    requestTimeoutMs
  }
}

/** The part size actually used for a file: at least `partSizeBytes`, large enough for at most 10 000 parts. */
export function effectivePartSize (fileSizeBytes: number, partSizeBytes: number): number {
  return Math.max(partSizeBytes, Math.ceil(fileSizeBytes / MAX_PARTS))
}
