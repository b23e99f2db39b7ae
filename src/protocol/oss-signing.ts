import { createHash, createHmac } from 'node:crypto'

/**
 * OSS request signing, V1 (HMAC-SHA1) and V4 (OSS4-HMAC-SHA256), and PostObject
 * policy signatures. Pure functions: the simulator checks with them, upload
 * tickets sign with them, and tests hold them to the Go SDK's published values.
 */

/** Percent-encodes as V4 requires: every byte but `A-Za-z0-9-_.~` (and `/` when `keepSlash`). */
export function uriEncode (text: string, keepSlash: boolean): string {
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte)
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** Header map as `name -> value`; names in any case. */
export type HeaderMap = Readonly<Record<string, string | undefined>>

function lowerHeaders (headers: HeaderMap): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out.set(k.toLowerCase(), v.trim())
  return out
}

/** Sub-resources that V1 signs in the CanonicalizedResource. */
export const V1_SIGNED_SUBRESOURCES: ReadonlySet<string> = new Set([
  'acl', 'uploads', 'location', 'cors', 'logging', 'website', 'referer', 'lifecycle', 'delete', 'append',
  'tagging', 'objectMeta', 'uploadId', 'partNumber', 'security-token', 'position', 'img', 'style', 'styleName',
  'replication', 'replicationProgress', 'replicationLocation', 'cname', 'bucketInfo', 'comp', 'qos', 'live',
  'status', 'vod', 'startTime', 'endTime', 'symlink', 'x-oss-process', 'response-content-type',
  'x-oss-traffic-limit', 'response-content-language', 'response-expires', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding', 'udf', 'udfName', 'udfImage', 'udfId',
  'udfImageDesc', 'udfApplication', 'udfApplicationLog', 'restore', 'callback', 'callback-var', 'qosInfo',
  'policy', 'stat', 'encryption', 'versions', 'versioning', 'versionId', 'requestPayment', 'x-oss-request-payer',
  'sequential', 'inventory', 'inventoryId', 'continuation-token', 'asyncFetch', 'worm', 'wormId',
  'wormExtend', 'withHashContext', 'x-oss-enable-md5', 'x-oss-enable-sha1', 'x-oss-enable-sha256',
  'x-oss-hash-ctx', 'x-oss-md5-ctx', 'transferAcceleration', 'regionList', 'cloudboxes', 'x-oss-ac-source-ip',
  'x-oss-ac-subnet-mask', 'x-oss-ac-vpc-id', 'x-oss-ac-forward-allow', 'metaQuery', 'resourceGroup', 'rtc',
  'x-oss-async-process', 'responseHeader'
])

/** What V1 signs of a request. */
export interface V1Request {
  method: string
  /** Decoded `/bucket/key` (or `/bucket/` for bucket operations). */
  resource: string
  headers: HeaderMap
  /** Decoded query parameters; only signed sub-resources count. */
  query?: ReadonlyArray<readonly [string, string]>
}

/** The V1 string to sign: `VERB\nContent-MD5\nContent-Type\nDate\nCanonicalizedOSSHeaders CanonicalizedResource`. */
export function v1StringToSign (request: V1Request): string {
  const h = lowerHeaders(request.headers)
  const ossHeaders = [...h.entries()].filter(([k]) => k.startsWith('x-oss-')).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const sub = (request.query ?? []).filter(([k]) => V1_SIGNED_SUBRESOURCES.has(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
  return [
    request.method.toUpperCase(),
    h.get('content-md5') ?? '',
    h.get('content-type') ?? '',
    // V1 signs the Date header, or x-oss-date in its place for presigned and header-less clients.
    h.get('date') ?? '',
    ossHeaders.map(([k, v]) => `${k}:${v}\n`).join('') + request.resource + (sub.length > 0 ? `?${sub.join('&')}` : '')
  ].join('\n')
}

/** base64(HMAC-SHA1(secret, stringToSign)): the V1 header signature and the V1 PostObject policy signature. */
export function signV1 (secret: string, stringToSign: string): string {
  return createHmac('sha1', secret).update(stringToSign, 'utf8').digest('base64')
}

/** The V4 signing key: HMAC chain over `aliyun_v4` + secret, date, region, product, `aliyun_v4_request`. */
export function v4SigningKey (secret: string, yyyymmdd: string, region: string, product = 'oss'): Buffer {
  const kDate = createHmac('sha256', `aliyun_v4${secret}`).update(yyyymmdd).digest()
  const kRegion = createHmac('sha256', kDate).update(region).digest()
  const kProduct = createHmac('sha256', kRegion).update(product).digest()
  return createHmac('sha256', kProduct).update('aliyun_v4_request').digest()
}

/** `20231216T162057Z` for a date. */
export function v4DateTime (date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

/** What V4 signs of a request. */
export interface V4Request {
  method: string
  bucket?: string
  /** Decoded object key. */
  key?: string
  /** Decoded query parameters. */
  query?: ReadonlyArray<readonly [string, string]>
  headers: HeaderMap
  /** Extra header names signed besides the defaults (`x-oss-*`, `content-type`, `content-md5`). */
  additionalHeaders?: readonly string[]
}

function isV4DefaultSigned (name: string): boolean {
  return name.startsWith('x-oss-') || name === 'content-type' || name === 'content-md5'
}

/** The V4 canonical request. */
export function v4CanonicalRequest (request: V4Request): string {
  const h = lowerHeaders(request.headers)
  const additional = [...new Set((request.additionalHeaders ?? []).map((n) => n.toLowerCase()))]
    .filter((n) => h.has(n) && !isV4DefaultSigned(n)).sort()
  const signed = [...h.keys()].filter((k) => isV4DefaultSigned(k) || additional.includes(k)).sort()
  let uri = '/'
  if (request.bucket !== undefined && request.bucket !== '') uri += `${request.bucket}/`
  if (request.key !== undefined) uri += request.key
  const query = (request.query ?? []).map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`)).join('&')
  return [
    request.method.toUpperCase(),
    uriEncode(uri, true),
    query,
    signed.map((k) => `${k}:${h.get(k) ?? ''}\n`).join(''),
    additional.join(';'),
    h.get('x-oss-content-sha256') ?? 'UNSIGNED-PAYLOAD'
  ].join('\n')
}

/** The V4 scope `yyyymmdd/region/product/aliyun_v4_request`. */
export function v4Scope (yyyymmdd: string, region: string, product = 'oss'): string {
  return `${yyyymmdd}/${region}/${product}/aliyun_v4_request`
}

/** The V4 string to sign for a canonical request. */
export function v4StringToSign (dateTime: string, scope: string, canonicalRequest: string): string {
  return `OSS4-HMAC-SHA256\n${dateTime}\n${scope}\n${createHash('sha256').update(canonicalRequest, 'utf8').digest('hex')}`
}

/** hex(HMAC-SHA256(signingKey, text)): V4 header and V4 PostObject policy signatures. */
export function signV4 (signingKey: Buffer, text: string): string {
  return createHmac('sha256', signingKey).update(text, 'utf8').digest('hex')
}

/** The full V4 `Authorization` header value for a request signed at `dateTime` (`x-oss-date`). */
export function v4Authorization (accessKeyId: string, secret: string, region: string, dateTime: string, request: V4Request): string {
  const day = dateTime.slice(0, 8)
  const scope = v4Scope(day, region)
  const signature = signV4(v4SigningKey(secret, day, region), v4StringToSign(dateTime, scope, v4CanonicalRequest(request)))
  const additional = (request.additionalHeaders ?? []).map((n) => n.toLowerCase()).filter((n) => !isV4DefaultSigned(n)).sort()
  return `OSS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}` +
    (additional.length > 0 ? `,AdditionalHeaders=${additional.join(';')}` : '') + `,Signature=${signature}`
}

/** Strips the `oss-` prefix: V4 scopes use the bare region id (`cn-hangzhou`). */
export function bareRegion (region: string): string {
  return region.startsWith('oss-') ? region.slice(4) : region
}
