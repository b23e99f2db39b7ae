import { timingSafeEqual } from 'node:crypto'
import { signV1, signV4, v4SigningKey } from '../protocol/oss-signing.js'
import type { SimCredentials } from './auth.js'
import { OSS_ERRORS } from './oss-error.js'

/** The fields of a PostObject form, names lower-cased (OSS reads them case-insensitively). */
export type FormFields = ReadonlyMap<string, string>

function same (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Checks the form signature: V1 (`OSSAccessKeyId`, `Signature` = base64
 * HMAC-SHA1 of the policy) or V4 (`x-oss-credential`, `x-oss-signature` = hex
 * HMAC-SHA256 of the policy under the V4 signing key). Returns whether it was V4.
 */
export function checkPostSignature (fields: FormFields, creds: SimCredentials): 'v1' | 'v4' {
  const policy = fields.get('policy')
  if (policy === undefined || policy === '') throw OSS_ERRORS.accessDenied('The form has no policy: anonymous upload is forbidden.')
  if (fields.get('x-oss-signature-version') === 'OSS4-HMAC-SHA256') {
    const credential = (fields.get('x-oss-credential') ?? '').split('/')
    const date = fields.get('x-oss-date') ?? ''
    if (credential.length !== 5 || credential[3] !== 'oss' || credential[4] !== 'aliyun_v4_request' || date.slice(0, 8) !== credential[1]) {
      throw OSS_ERRORS.invalidArgument('The x-oss-credential or x-oss-date form field is invalid.')
    }
    if (credential[0] !== creds.accessKeyId) throw OSS_ERRORS.invalidAccessKeyId()
    const expected = signV4(v4SigningKey(creds.accessKeySecret, credential[1], credential[2] as string), policy)
    if (!same(expected, fields.get('x-oss-signature') ?? '')) throw OSS_ERRORS.signatureDoesNotMatch({ StringToSign: policy, OSSAccessKeyId: credential[0] })
    return 'v4'
  }
  const id = fields.get('ossaccesskeyid')
  if (id === undefined) throw OSS_ERRORS.accessDenied('The form has no OSSAccessKeyId or x-oss-credential.')
  if (id !== creds.accessKeyId) throw OSS_ERRORS.invalidAccessKeyId()
  if (!same(signV1(creds.accessKeySecret, policy), fields.get('signature') ?? '')) {
    throw OSS_ERRORS.signatureDoesNotMatch({ StringToSign: policy, OSSAccessKeyId: id })
  }
  return 'v1'
}

/** What the policy conditions are checked against. */
export interface PostUpload {
  bucket: string
  fields: FormFields
  /** Bytes of the file. */
  size: number
  now: Date
  signature: 'v1' | 'v4'
}

function conditionFailed (condition: unknown): Error {
  return OSS_ERRORS.accessDenied(`Invalid according to Policy: Policy Condition failed: ${JSON.stringify(condition)}`)
}

function fieldValue (u: PostUpload, name: string): string {
  const n = name.toLowerCase()
  if (n === 'bucket') return u.bucket
  return u.fields.get(n) ?? ''
}

function checkCondition (u: PostUpload, c: unknown): void {
  if (c !== null && typeof c === 'object' && !Array.isArray(c)) {
    for (const [name, value] of Object.entries(c)) {
      if (typeof value !== 'string') throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid Simple-Condition: value must be a string.')
      if (fieldValue(u, name) !== value) throw conditionFailed(c)
    }
    return
  }
  if (!Array.isArray(c) || c.length !== 3) throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid Condition.')
  const [op, a, b] = c as [unknown, unknown, unknown]
  const operator = typeof op === 'string' ? op.toLowerCase() : ''
  if (operator === 'content-length-range') {
    const min = Number(a)
    const max = Number(b)
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max)) throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid content-length-range.')
    if (u.size > max) throw OSS_ERRORS.entityTooLarge()
    if (u.size < min) throw OSS_ERRORS.entityTooSmall()
    return
  }
  if (typeof a !== 'string' || !a.startsWith('$')) throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid Condition.')
  const actual = fieldValue(u, a.slice(1))
  switch (operator) {
    case 'eq':
      if (typeof b !== 'string') throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid Condition.')
      if (actual !== b) throw conditionFailed(c)
      return
    case 'starts-with':
      if (typeof b !== 'string') throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid Condition.')
      if (!actual.startsWith(b)) throw conditionFailed(c)
      return
    case 'in':
    case 'not-in': {
      if (!Array.isArray(b)) throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid Condition.')
      const found = b.includes(actual)
      if (found !== (operator === 'in')) throw conditionFailed(c)
      return
    }
    default:
      throw OSS_ERRORS.invalidPolicy('Invalid Policy: Unknown condition operator.')
  }
}

const V4_FIELDS = ['x-oss-signature-version', 'x-oss-credential', 'x-oss-date']

function mentions (conditions: unknown[], name: string): boolean {
  return conditions.some((c) => {
    if (Array.isArray(c)) return typeof c[1] === 'string' && c[1].toLowerCase() === `$${name}`
    return c !== null && typeof c === 'object' && Object.keys(c).some((k) => k.toLowerCase() === name)
  })
}

/**
 * Checks a PostObject policy as OSS does: a base64 JSON document with an
 * `expiration` in the future and `conditions`, each of which must hold:
 * `{"field": "value"}`, `["eq"|"starts-with", "$field", "value"]`,
 * `["in"|"not-in", "$field", [...]]`, `["content-length-range", min, max]`. A
 * pinned `callback` or `x:` field is an ordinary `eq` condition. A V4 form's
 * policy must name the three V4 fields.
 */
export function checkPostPolicy (u: PostUpload): void {
  let doc: unknown
  try {
    doc = JSON.parse(Buffer.from(u.fields.get('policy') ?? '', 'base64').toString('utf8'))
  } catch {
    throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid JSON.')
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid JSON.')
  const { expiration, conditions } = doc as { expiration?: unknown, conditions?: unknown }
  // An expiration without a zone would be read in local time: OSS wants UTC, ending in Z.
  if (typeof expiration !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(expiration) || !Number.isFinite(Date.parse(expiration))) {
    throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid \'expiration\' value.')
  }
  if (Date.parse(expiration) < u.now.getTime()) throw OSS_ERRORS.accessDenied('Invalid according to Policy: Policy expired.')
  if (!Array.isArray(conditions)) throw OSS_ERRORS.invalidPolicy('Invalid Policy: Invalid \'conditions\' value.')
  if (u.signature === 'v4') {
    for (const name of V4_FIELDS) {
      if (!mentions(conditions, name)) throw OSS_ERRORS.accessDenied(`Invalid according to Policy: the policy has no condition for ${name}.`)
    }
  }
  for (const c of conditions) checkCondition(u, c)
}
