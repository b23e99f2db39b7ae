import OSS from 'ali-oss'
import { invalidOption } from '../errors.js'
import { normalizeEtag, type UnconfirmedSystemFields } from './envelope.js'

/** The two OSS operations a sweep uses (ListObjectsV2 and HeadObject); an ali-oss client has them. */
export interface BucketReader {
  listV2: (query: { prefix: string, 'max-keys': number, 'continuation-token'?: string }, options: { timeout?: number }) => Promise<{
    objects: Array<{ name: string, etag: string, size: number, lastModified: string }> | undefined
    isTruncated: boolean
    nextContinuationToken: string | null | undefined
  }>
  head: (name: string, options: { timeout?: number }) => Promise<{ status: number, res: { headers: unknown } }>
}

/** Access keys for list and head; a session token with STS credentials. */
export interface OssCredentials {
  accessKeyId: string
  accessKeySecret: string
  sessionToken?: string
}

/** Where the bucket is and how to reach it. */
export interface BucketAddress {
  bucket: string
  /** `https://oss-cn-hangzhou.aliyuncs.com`, or the simulator's origin. */
  endpoint?: string
  /** `oss-cn-hangzhou`; used when no endpoint is given. */
  region?: string
  credentials: OssCredentials
  /** One request, ms. Default: 60000. */
  timeoutMs?: number
}

/** Reads the credentials from `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and optional `OSS_SESSION_TOKEN`. */
export function credentialsFromEnv (env: Readonly<Record<string, string | undefined>>): OssCredentials {
  const accessKeyId = env.OSS_ACCESS_KEY_ID ?? ''
  const accessKeySecret = env.OSS_ACCESS_KEY_SECRET ?? ''
  if (accessKeyId === '' || accessKeySecret === '') throw invalidOption('OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET must be set (a RAM user allowed oss:ListObjects and oss:GetObject on the bucket)')
  const token = env.OSS_SESSION_TOKEN ?? ''
  return { accessKeyId, accessKeySecret, ...(token === '' ? {} : { sessionToken: token }) }
}

/** An ali-oss client for the bucket. */
export function openBucket (address: BucketAddress): BucketReader {
  const { bucket, endpoint, region, credentials } = address
  if (bucket === '') throw invalidOption('the bucket name must not be empty')
  if (endpoint === undefined && region === undefined) throw invalidOption('give the bucket\'s endpoint or region (such as oss-cn-hangzhou)')
  if (endpoint !== undefined) {
    let url: URL
    try { url = new URL(endpoint) } catch { throw invalidOption(`the endpoint must be an http: or https: URL, got ${JSON.stringify(endpoint)}`) }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidOption(`the endpoint must be an http: or https: URL, got ${JSON.stringify(endpoint)}`)
  }
  return new OSS({
    bucket,
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(region === undefined ? {} : { region }),
    accessKeyId: credentials.accessKeyId,
    accessKeySecret: credentials.accessKeySecret,
    ...(credentials.sessionToken === undefined ? {} : { stsToken: credentials.sessionToken }),
    // ali-oss speaks plain http to a region's endpoint unless told otherwise.
    secure: endpoint === undefined ? true : endpoint.startsWith('https:'),
    timeout: address.timeoutMs ?? 60_000
  }) as unknown as BucketReader
}

function header (headers: Record<string, unknown>, name: string): string | undefined {
  const v = headers[name]
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined
}

/** HeadObject's facts of an object, or null when it is gone (404). */
export async function headObject (reader: BucketReader, bucket: string, key: string, timeoutMs?: number): Promise<UnconfirmedSystemFields | null> {
  let headers: Record<string, unknown>
  try {
    headers = (await reader.head(key, timeoutMs === undefined ? {} : { timeout: timeoutMs })).res.headers as Record<string, unknown>
  } catch (err) {
    if ((err as { status?: unknown }).status === 404) return null
    throw err
  }
  const meta: Record<string, string> = {}
  for (const name of Object.keys(headers).sort()) {
    const value = header(headers, name)
    if (name.toLowerCase().startsWith('x-oss-meta-') && value !== undefined) meta[name.toLowerCase()] = value
  }
  const modified = Date.parse(header(headers, 'last-modified') ?? '')
  return {
    bucket,
    object: key,
    etag: normalizeEtag(header(headers, 'etag') ?? ''),
    size: Number(header(headers, 'content-length') ?? 0),
    mimeType: header(headers, 'content-type') ?? null,
    imageInfo: {},
    crc64: header(headers, 'x-oss-hash-crc64ecma') ?? null,
    lastModified: Number.isNaN(modified) ? new Date(0).toISOString() : new Date(modified).toISOString(),
    meta
  }
}
