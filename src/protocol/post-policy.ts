import { invalidOption } from '../errors.js'
import { bareRegion, signV1, signV4, v4DateTime, v4Scope, v4SigningKey } from './oss-signing.js'

/**
 * PostObject policies (browser direct upload, protocol doc §7): the policy JSON,
 * its base64 form and the V1 or V4 form signature. Pure: the caller passes the
 * time, so the expiry is computed from an injected clock and always in UTC.
 */

/** One policy condition, in the shapes OSS accepts. */
export type PostPolicyCondition =
  | Readonly<Record<string, string>>
  | readonly ['eq' | 'starts-with', string, string]
  | readonly ['content-length-range', number, number]
  | readonly ['in' | 'not-in', string, readonly string[]]

/** The policy JSON. `expiration` is UTC ISO-8601 ending in `Z`. */
export interface PostPolicy {
  expiration: string
  conditions: PostPolicyCondition[]
}

/** What one upload may be. */
export interface PostPolicyInput {
  /** The current time, from the caller's clock. */
  now: Date
  /** How long the policy lets an upload start, in seconds. */
  expiresInSeconds: number
  bucket: string
  /** The exact object key, pinned with `eq`. */
  key: string
  /** Smallest object accepted, in bytes. Default 0. */
  minSizeBytes?: number
  /** Largest object accepted, in bytes. */
  maxSizeBytes: number
  /** Allowed `Content-Type` values: one is pinned with `eq`, several with `in`. Default: any. */
  contentTypes?: readonly string[]
  /** The base64 `callback` parameter, pinned as `{"callback": "<b64>"}`. */
  callback?: string
  /** Custom variables, `x:name -> value`, each pinned with `eq`. */
  vars?: Readonly<Record<string, string>>
}

/** Which form signature to use: V4 (HMAC-SHA256, the default) or V1 (HMAC-SHA1). */
export type PostSignatureVersion = 'v1' | 'v4'

/** The credentials that sign a form. */
export interface PostSigningCredentials {
  accessKeyId: string
  accessKeySecret: string
  /** Region id, with or without `oss-`; V4 only. */
  region?: string
}

/** A signed PostObject form, ready for the browser. */
export interface SignedPostForm {
  /** The policy as signed (V4 adds its three fields to the conditions). */
  policy: PostPolicy
  /**
   * The form fields, in the order to send them; the browser appends `file` last.
   * Includes `key`, `policy`, the signature fields, `callback`, the `x:` variables
   * and `Content-Type` when exactly one type is allowed.
   */
  fields: Record<string, string>
}

/** OSS stores at most 5 GB through PostObject. */
export const MAX_POST_OBJECT_BYTES = 5 * 1024 ** 3
/** OSS object keys are at most 1023 bytes of UTF-8. */
export const MAX_OBJECT_KEY_BYTES = 1023

/** OSS's bucket naming rule: 3 to 63 characters of a-z, 0-9 and `-`, starting and ending with a letter or digit. */
export const BUCKET_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/

/** The `expiration` value: `now + seconds`, in UTC, e.g. `2026-01-02T03:04:05.000Z`. */
export function policyExpiration (now: Date, expiresInSeconds: number): string {
  // toISOString is always UTC: computing in local time and appending Z is the classic bug.
  return new Date(now.getTime() + expiresInSeconds * 1000).toISOString()
}

function checkInput (input: PostPolicyInput): void {
  if (!(input.now instanceof Date) || Number.isNaN(input.now.getTime())) throw invalidOption('now must be a valid Date')
  if (!Number.isSafeInteger(input.expiresInSeconds) || input.expiresInSeconds <= 0) {
    throw invalidOption(`expiresInSeconds must be a positive whole number, got ${String(input.expiresInSeconds)}`)
  }
  if (typeof input.bucket !== 'string' || !BUCKET_NAME.test(input.bucket)) {
    throw invalidOption('bucket must be 3 to 63 characters of a-z, 0-9 and -, not starting or ending with -')
  }
  if (typeof input.key !== 'string' || input.key === '' || Buffer.byteLength(input.key) > MAX_OBJECT_KEY_BYTES) {
    throw invalidOption(`key must be 1 to ${MAX_OBJECT_KEY_BYTES} bytes`)
  }
  const min = input.minSizeBytes ?? 0
  const max = input.maxSizeBytes
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 0 || max < min || max > MAX_POST_OBJECT_BYTES) {
    throw invalidOption(`size range must satisfy 0 <= minSizeBytes <= maxSizeBytes <= ${MAX_POST_OBJECT_BYTES}`)
  }
  if (input.contentTypes !== undefined && (input.contentTypes.length === 0 || input.contentTypes.some((t) => typeof t !== 'string' || t === ''))) {
    throw invalidOption('contentTypes must be a non-empty list of non-empty strings')
  }
  for (const name of Object.keys(input.vars ?? {})) {
    if (!name.startsWith('x:')) throw invalidOption('policy variables must be named x:<name>')
  }
}

/** Builds the policy for one upload: expiry, bucket, exact key, size range, content types, pinned callback and variables. */
export function buildPostPolicy (input: PostPolicyInput): PostPolicy {
  checkInput(input)
  const conditions: PostPolicyCondition[] = [
    { bucket: input.bucket },
    ['eq', '$key', input.key],
    ['content-length-range', input.minSizeBytes ?? 0, input.maxSizeBytes]
  ]
  const types = input.contentTypes
  if (types !== undefined) {
    conditions.push(types.length === 1 ? ['eq', '$content-type', types[0] as string] : ['in', '$content-type', [...types]])
  }
  // The exact-match object form, as OSS documents it: the browser cannot swap the callback.
  if (input.callback !== undefined) conditions.push({ callback: input.callback })
  for (const [name, value] of Object.entries(input.vars ?? {})) conditions.push(['eq', `$${name}`, value])
  return { expiration: policyExpiration(input.now, input.expiresInSeconds), conditions }
}

/** Standard base64 of the policy JSON (UTF-8): the `policy` field, and what is signed. */
export function encodePostPolicy (policy: PostPolicy): string {
  return Buffer.from(JSON.stringify(policy), 'utf8').toString('base64')
}

/**
 * Signs a policy. V4 first adds `x-oss-signature-version`, `x-oss-credential` and
 * `x-oss-date` to its conditions (OSS requires them there), then signs the base64
 * policy with the V4 signing key (hex); V1 signs it with HMAC-SHA1 (base64).
 * Returns the signed policy and the signature form fields (with `policy`).
 */
export function signPostPolicy (
  policy: PostPolicy, credentials: PostSigningCredentials, version: PostSignatureVersion, now: Date
): { policy: PostPolicy, fields: Record<string, string> } {
  if (credentials.accessKeyId === '' || credentials.accessKeySecret === '') throw invalidOption('credentials must not be empty')
  if (version === 'v1') {
    const policyB64 = encodePostPolicy(policy)
    return { policy, fields: { OSSAccessKeyId: credentials.accessKeyId, policy: policyB64, Signature: signV1(credentials.accessKeySecret, policyB64) } }
  }
  if (version !== 'v4') throw invalidOption(`signature version must be v1 or v4, got ${JSON.stringify(version)}`)
  if (credentials.region === undefined || credentials.region === '') throw invalidOption('region is required for V4 form signatures')
  const region = bareRegion(credentials.region)
  const dateTime = v4DateTime(now)
  const day = dateTime.slice(0, 8)
  const v4Fields = {
    'x-oss-signature-version': 'OSS4-HMAC-SHA256',
    'x-oss-credential': `${credentials.accessKeyId}/${v4Scope(day, region)}`,
    'x-oss-date': dateTime
  }
  const signed: PostPolicy = {
    expiration: policy.expiration,
    conditions: [...policy.conditions, ...Object.entries(v4Fields).map(([k, v]) => ({ [k]: v }))]
  }
  const policyB64 = encodePostPolicy(signed)
  const signature = signV4(v4SigningKey(credentials.accessKeySecret, day, region), policyB64)
  return { policy: signed, fields: { policy: policyB64, ...v4Fields, 'x-oss-signature': signature } }
}

/** Builds and signs the form for one upload: the fields a browser sends before `file`. */
export function createPostForm (
  input: PostPolicyInput, credentials: PostSigningCredentials, version: PostSignatureVersion = 'v4'
): SignedPostForm {
  const { policy, fields: signatureFields } = signPostPolicy(buildPostPolicy(input), credentials, version, input.now)
  const fields: Record<string, string> = { key: input.key, ...signatureFields }
  if (input.callback !== undefined) fields.callback = input.callback
  for (const [name, value] of Object.entries(input.vars ?? {})) fields[name] = value
  if (input.contentTypes?.length === 1) fields['Content-Type'] = input.contentTypes[0] as string
  return { policy, fields }
}
