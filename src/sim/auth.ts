import { timingSafeEqual } from 'node:crypto'
import {
  signV1, v1StringToSign, v4CanonicalRequest, v4Scope, v4SigningKey, v4StringToSign, signV4,
  type HeaderMap
} from '../protocol/oss-signing.js'
import { OSS_ERRORS } from './oss-error.js'

/** The access key pair the simulator accepts. */
export interface SimCredentials {
  accessKeyId: string
  accessKeySecret: string
}

/** The fixed development key pair the simulator accepts when none is configured. Never use it anywhere else. */
export const SIM_DEV_CREDENTIALS: Readonly<SimCredentials> = Object.freeze({
  accessKeyId: 'oss-sim-dev-access-key-id',
  accessKeySecret: 'oss-sim-dev-access-key-secret'
})

/** What the signature checks read of a request. */
export interface SignedRequest {
  method: string
  /** Absent for the simulator's own endpoints. */
  bucket?: string
  key?: string
  /** Decoded query parameters, in order. */
  query: ReadonlyArray<readonly [string, string]>
  /** Lower-case names. */
  headers: HeaderMap
  now: Date
  /** The V1 CanonicalizedResource, when not `/bucket/key` (the simulator's own endpoints). */
  resource?: string
}

/** OSS refuses a request whose time is more than 15 minutes off. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000

function same (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function v1Resource (r: SignedRequest): string {
  if (r.resource !== undefined) return r.resource
  if (r.bucket === undefined) return '/'
  return `/${r.bucket}/${r.key ?? ''}`
}

function queryValue (r: SignedRequest, name: string): string | undefined {
  return r.query.find(([k]) => k === name)?.[1]
}

function checkSkew (time: number, now: Date): void {
  if (!Number.isFinite(time)) throw OSS_ERRORS.accessDenied('The request time is missing or invalid.')
  if (Math.abs(time - now.getTime()) > MAX_CLOCK_SKEW_MS) throw OSS_ERRORS.timeTooSkewed()
}

function checkV1 (r: SignedRequest, creds: SimCredentials, accessKeyId: string, signature: string, date: string | undefined): void {
  if (accessKeyId !== creds.accessKeyId) throw OSS_ERRORS.invalidAccessKeyId()
  const headers = { ...r.headers, date }
  const stringToSign = v1StringToSign({ method: r.method, resource: v1Resource(r), headers, query: r.query })
  if (!same(signV1(creds.accessKeySecret, stringToSign), signature)) {
    throw OSS_ERRORS.signatureDoesNotMatch({ StringToSign: stringToSign, OSSAccessKeyId: accessKeyId })
  }
}

interface V4Credential { accessKeyId: string, day: string, region: string }

function parseCredential (text: string): V4Credential {
  const parts = text.split('/')
  if (parts.length !== 5 || parts[3] !== 'oss' || parts[4] !== 'aliyun_v4_request' || !/^\d{8}$/.test(parts[1] ?? '')) {
    throw OSS_ERRORS.invalidArgument('Invalid credential in Authorization header.')
  }
  return { accessKeyId: parts[0] as string, day: parts[1] as string, region: parts[2] as string }
}

function v4Time (dateTime: string | undefined): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(dateTime ?? '')
  if (m === null) return Number.NaN
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))
}

function checkV4 (r: SignedRequest, creds: SimCredentials, credential: V4Credential, dateTime: string, additional: string[],
  signature: string, query: ReadonlyArray<readonly [string, string]>): void {
  if (credential.accessKeyId !== creds.accessKeyId) throw OSS_ERRORS.invalidAccessKeyId()
  if (dateTime.slice(0, 8) !== credential.day) throw OSS_ERRORS.invalidArgument('The date in the credential does not match x-oss-date.')
  const canonical = v4CanonicalRequest({ method: r.method, bucket: r.bucket, key: r.key, query, headers: r.headers, additionalHeaders: additional })
  const stringToSign = v4StringToSign(dateTime, v4Scope(credential.day, credential.region), canonical)
  const expected = signV4(v4SigningKey(creds.accessKeySecret, credential.day, credential.region), stringToSign)
  if (!same(expected, signature)) {
    throw OSS_ERRORS.signatureDoesNotMatch({ CanonicalRequest: canonical, StringToSign: stringToSign, OSSAccessKeyId: credential.accessKeyId })
  }
}

/**
 * Checks a request's signature as OSS does: V1 (`Authorization: OSS id:sig`) or
 * V4 (`OSS4-HMAC-SHA256 Credential=…`) headers, or V1/V4 presigned query
 * parameters. Throws an {@link OssHttpError} (`AccessDenied`,
 * `InvalidAccessKeyId`, `SignatureDoesNotMatch`, `RequestTimeTooSkewed`).
 */
export function checkRequestSignature (r: SignedRequest, creds: SimCredentials): void {
  const authorization = r.headers.authorization
  if (authorization !== undefined && authorization.startsWith('OSS ')) {
    const m = /^OSS ([^:\s]+):(\S+)$/.exec(authorization)
    if (m === null) throw OSS_ERRORS.invalidArgument('Authorization header is invalid.')
    // Clients that send no Date (ali-oss) sign x-oss-date in its place.
    const date = r.headers.date ?? r.headers['x-oss-date']
    checkSkew(Date.parse(date ?? ''), r.now)
    checkV1(r, creds, m[1] as string, m[2] as string, date)
    return
  }
  if (authorization !== undefined && authorization.startsWith('OSS4-HMAC-SHA256 ')) {
    const fields = new Map<string, string>()
    for (const piece of authorization.slice('OSS4-HMAC-SHA256 '.length).split(',')) {
      const eq = piece.indexOf('=')
      if (eq !== -1) fields.set(piece.slice(0, eq).trim(), piece.slice(eq + 1).trim())
    }
    const credential = parseCredential(fields.get('Credential') ?? '')
    const signature = fields.get('Signature')
    const dateTime = r.headers['x-oss-date']
    if (signature === undefined || dateTime === undefined) throw OSS_ERRORS.invalidArgument('Authorization header is invalid.')
    checkSkew(v4Time(dateTime), r.now)
    const additional = (fields.get('AdditionalHeaders') ?? '').split(';').filter((s) => s !== '')
    checkV4(r, creds, credential, dateTime, additional, signature, r.query)
    return
  }
  if (authorization !== undefined) throw OSS_ERRORS.invalidArgument('Authorization header is invalid.')

  const v1Id = queryValue(r, 'OSSAccessKeyId')
  if (v1Id !== undefined) {
    const expires = queryValue(r, 'Expires') ?? ''
    if (!/^\d{1,12}$/.test(expires)) throw OSS_ERRORS.accessDenied('The Expires parameter is invalid.')
    if (Number(expires) * 1000 < r.now.getTime()) throw OSS_ERRORS.expired()
    checkV1(r, creds, v1Id, queryValue(r, 'Signature') ?? '', expires)
    return
  }
  if (queryValue(r, 'x-oss-signature-version') === 'OSS4-HMAC-SHA256') {
    const credential = parseCredential(queryValue(r, 'x-oss-credential') ?? '')
    const dateTime = queryValue(r, 'x-oss-date') ?? ''
    const start = v4Time(dateTime)
    const expiresS = Number(queryValue(r, 'x-oss-expires') ?? '')
    if (!Number.isFinite(start) || !Number.isSafeInteger(expiresS) || expiresS <= 0) throw OSS_ERRORS.accessDenied('The presigned URL is invalid.')
    if (start + expiresS * 1000 < r.now.getTime()) throw OSS_ERRORS.expired()
    const additional = (queryValue(r, 'x-oss-additional-headers') ?? '').split(';').filter((s) => s !== '')
    const query = r.query.filter(([k]) => k !== 'x-oss-signature')
    checkV4(r, creds, credential, dateTime, additional, queryValue(r, 'x-oss-signature') ?? '', query)
    return
  }
  throw OSS_ERRORS.accessDenied()
}
