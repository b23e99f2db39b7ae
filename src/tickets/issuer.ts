import { randomBytes } from 'node:crypto'
import { invalidOption, ossError, isOssCallbackError } from '../errors.js'
import type { ParsedCallbackBody } from '../protocol/body.js'
import { encodeCallbackParam } from '../protocol/callback-param.js'
import {
  createPostForm, MAX_OBJECT_KEY_BYTES, MAX_POST_OBJECT_BYTES, type PostSignatureVersion
} from '../protocol/post-policy.js'
import { createMemoryTicketStore, type TicketConsumeOptions, type TicketStore, type UploadTicket } from './store.js'
import { wholeNumberOption } from '../options.js'

/** Options of {@link createUploadTickets}: what every ticket's policy is built from. */
export interface UploadTicketsOptions {
  /** AccessKey id that signs the forms (env `OSS_ACCESS_KEY_ID`). */
  accessKeyId: string
  /** AccessKey secret (env `OSS_ACCESS_KEY_SECRET`). Never sent: only signatures leave the server. */
  accessKeySecret: string
  /** The bucket uploads go to (env `OSS_BUCKET`). */
  bucket: string
  /**
   * The OSS endpoint (env `OSS_ENDPOINT`), such as `https://oss-cn-hangzhou.aliyuncs.com`
   * (a bare host means https). Browsers upload to `https://<bucket>.<host>/`; for an IP
   * or `localhost` endpoint (a local simulator) to `<endpoint>/<bucket>`.
   */
  endpoint: string
  /** Region id, `cn-hangzhou` or `oss-cn-hangzhou` (env `OSS_REGION`). Required for V4 signatures. */
  region?: string
  /** The callback URL OSS will call, pinned in every policy (env `OSS_CALLBACK_PUBLIC_URL`). */
  callbackUrl: string
  /** Every key starts with this (env `OSS_CALLBACK_UPLOAD_PREFIX`). Default `uploads/`. */
  uploadPrefix?: string
  /** How long a policy lets an upload start, in seconds. Default 600. */
  expirySeconds?: number
  /**
   * How long after expiry a callback is still accepted, in seconds: OSS checks the
   * policy when an upload starts, and a large upload can end long after. Default 3600.
   */
  callbackGraceSeconds?: number
  /** Largest upload, in bytes. Default 104857600 (100 MiB); at most 5 GiB (PostObject's limit). */
  maxSizeBytes?: number
  /** Allowed content types (lower case `type/subtype`). Default: any. */
  contentTypes?: readonly string[]
  /** Form signature version. Default `v4`. */
  signatureVersion?: PostSignatureVersion
  /** Accept verified callbacks that carry no ticket. Default false: they get `OSS_CB_ERR_TICKET_MISSING`. */
  allowCallbacksWithoutTicket?: boolean
  /** Where tickets are kept. Default: an in-memory store (one instance only). */
  store?: TicketStore
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number
}

/** What a ticket request may ask for. Every field is optional. */
export interface TicketRequest {
  /** A key suggestion, relative to the upload prefix, such as `avatars/me.png`; checked and kept under the prefix. */
  key?: string
  /** The file's name; a generated key `<prefix><random>/<name>` keeps its (sanitised) base name. */
  filename?: string
  /** The file's content type; pinned in the policy (and checked against the allowlist). */
  contentType?: string
  /** The file's size in bytes; pins the size range to exactly this. */
  size?: number
}

/** Who the ticket is for, as the app's authorization decided. */
export interface TicketGrant {
  /** Who asked (a user id, for instance): stored with the ticket and shown to the callback handler. */
  subject?: string
}

/** What a browser needs for one PostObject upload. */
export interface IssuedTicket {
  /** The ticket id (also in `fields['x:ticket']`). */
  ticket: string
  /** Where to POST the form. */
  uploadUrl: string
  /** The object key the upload will have. */
  key: string
  /** When the upload must have started, UTC ISO-8601. */
  expiresAt: string
  /** Largest size the policy accepts, in bytes. */
  maxSizeBytes: number
  /** Form fields to send, in order, before the `file` field (which must be last). */
  fields: Record<string, string>
}

/** Issues tickets and binds callbacks to them. */
export interface UploadTickets {
  /** Creates, stores and signs one ticket. Throws a coded error for a bad request or a store failure. */
  issue (request: TicketRequest, grant?: TicketGrant): Promise<IssuedTicket>
  /**
   * Consumes the ticket a verified callback carries, exactly once, and checks that the
   * callback's bucket, key and size are what the ticket allowed. Returns the ticket, or
   * `undefined` for a callback without one when those are allowed. Throws a coded error.
   * `options.deadlineAt` (the callback's deadline) goes to the store's consume.
   */
  bind (callback: Pick<ParsedCallbackBody, 'system' | 'vars'>, options?: TicketConsumeOptions): Promise<UploadTicket | undefined>
  /**
   * {@link UploadTickets.bind} in the shape of the receiver plugin's `preHandler` hook: give it as
   * `preHandler: tickets.bindCallback`, and the handler's context gets `ticket` (see {@link TicketContext}).
   * A handler can call it too, with its own context, to consume the ticket at a point of its choosing
   * (after its own commit, for instance): it consumes by the context's `deadlineAt`.
   */
  readonly bindCallback: (callback: Pick<ParsedCallbackBody, 'system' | 'vars'>, context: { deadlineAt: number }) => Promise<TicketContext>
  readonly store: TicketStore
  readonly allowCallbacksWithoutTicket: boolean
  /** Closes the store when these tickets made it (the default memory store); a store given in the options is the caller's to close. */
  close (): Promise<void>
}

/** What a callback handler's context gains from {@link UploadTickets.bindCallback}. */
export interface TicketContext {
  /** The ticket this callback consumed (who asked, when). Absent for an allowed ticket-less callback. */
  ticket?: UploadTicket
}

/** The callback body every ticket's policy pins: the fields a binding needs, and the common ones. */
export const TICKET_CALLBACK_BODY =
  'bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}&crc64=${crc64}' +
  '&contentMd5=${contentMd5}&operation=${operation}&clientIp=${clientIp}&reqId=${reqId}&x:ticket=${x:ticket}'

/** The variable that carries the ticket id. */
export const TICKET_VAR = 'x:ticket'

const TICKET_ID = /^[A-Za-z0-9_-]{24}$/
const CONTENT_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/
// After the policy expires, a replay is still told apart (409 / expired 403) for this long.
const REMEMBER_AFTER_MS = 15 * 60_000
const MAX_SUBJECT_CHARS = 256

function nonEmpty (name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalidOption(`${name} is required`)
  return value
}

/** The URL browsers POST to, from the endpoint and bucket. */
export function uploadUrlOf (endpoint: string, bucket: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw invalidOption('endpoint must be a URL such as https://oss-cn-hangzhou.aliyuncs.com')
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '' ||
      url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw invalidOption('endpoint must be an http(s) origin with no path, query or credentials')
  }
  const h = url.hostname
  const literal = /^[\d.]+$/.test(h) || h.startsWith('[') || h === 'localhost'
  // Virtual-hosted style is what OSS serves; an address cannot carry a bucket label.
  return literal ? `${url.origin}/${bucket}` : `${url.protocol}//${bucket}.${url.host}`
}

function isSafeKeyText (text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u001f\u007f\\]/.test(text)
}

function checkPrefix (prefix: string): string {
  if (prefix === '' || prefix.startsWith('/') || !isSafeKeyText(prefix) || prefix.split('/').some((s, i, all) => (s === '' && i < all.length - 1) || s === '.' || s === '..')) {
    throw invalidOption('uploadPrefix must be a non-empty relative key prefix such as uploads/, without //, . or .. segments')
  }
  return prefix
}

function sanitiseFilename (filename: string | undefined): string {
  if (filename === undefined) return 'file'
  const base = filename.split(/[\\/]/).pop() ?? ''
  const clean = base.normalize('NFC').replace(/[^\p{L}\p{N}._ -]+/gu, '_').replace(/^[.\s]+/, '').trim()
  const short = [...clean].slice(0, 100).join('')
  return short === '' ? 'file' : short
}

function badRequest (reason: string): Error {
  return ossError('TICKET_REQUEST_INVALID', reason)
}

/**
 * Reads a ticket request body (a parsed JSON value). Unknown fields are ignored;
 * a field of the wrong type is `OSS_CB_ERR_TICKET_REQUEST_INVALID`.
 */
export function parseTicketRequest (body: unknown): TicketRequest {
  if (body === undefined || body === null) return {}
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('ticket request is not a JSON object')
  const b = body as Record<string, unknown>
  const out: TicketRequest = {}
  for (const name of ['key', 'filename', 'contentType'] as const) {
    const v = b[name]
    if (v === undefined || v === null) continue
    if (typeof v !== 'string' || v.length > 1024) throw badRequest(`${name} is not a string of at most 1024 characters`)
    out[name] = v
  }
  if (b.size !== undefined && b.size !== null) {
    if (typeof b.size !== 'number' || !Number.isSafeInteger(b.size) || b.size < 0) throw badRequest('size is not a whole number of bytes')
    out.size = b.size
  }
  return out
}

/** Creates the ticket issuer and binder; validates every option now. */
export function createUploadTickets (options: UploadTicketsOptions): UploadTickets {
  const accessKeyId = nonEmpty('accessKeyId', options.accessKeyId)
  const accessKeySecret = nonEmpty('accessKeySecret', options.accessKeySecret)
  const bucket = nonEmpty('bucket', options.bucket)
  if (!/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) throw invalidOption('bucket must be 3 to 63 characters of a-z, 0-9 and -')
  const uploadUrl = uploadUrlOf(nonEmpty('endpoint', options.endpoint), bucket)
  const version = options.signatureVersion ?? 'v4'
  if (version !== 'v4' && version !== 'v1') throw invalidOption(`signatureVersion must be v4 or v1, got ${JSON.stringify(version)}`)
  const region = options.region
  if (version === 'v4' && (region === undefined || !/^(oss-)?[a-z0-9-]+$/.test(region))) {
    throw invalidOption('region (such as cn-hangzhou) is required for V4 form signatures')
  }
  const prefix = checkPrefix(options.uploadPrefix ?? 'uploads/')
  const expirySeconds = wholeNumberOption('expirySeconds', options.expirySeconds, 600, { min: 1, max: 7 * 24 * 3600 })
  const graceSeconds = wholeNumberOption('callbackGraceSeconds', options.callbackGraceSeconds, 3600, { min: 0, max: 7 * 24 * 3600 })
  const maxSizeBytes = wholeNumberOption('maxSizeBytes', options.maxSizeBytes, 100 * 1024 * 1024, { min: 1, max: MAX_POST_OBJECT_BYTES })
  let allowedTypes: string[] | undefined
  if (options.contentTypes !== undefined) {
    allowedTypes = options.contentTypes.map((t) => t.trim().toLowerCase())
    if (allowedTypes.length === 0 || allowedTypes.some((t) => !CONTENT_TYPE.test(t))) {
      throw invalidOption('contentTypes must be a non-empty list of type/subtype values')
    }
  }
  // The callback is the same for every ticket (the id travels as x:ticket), so encode and check it once.
  let callback: string
  try {
    callback = encodeCallbackParam({ callbackUrl: nonEmpty('callbackUrl', options.callbackUrl), callbackBody: TICKET_CALLBACK_BODY }).callback
  } catch (err) {
    if (!isOssCallbackError(err) || err.code !== 'OSS_CB_ERR_INVALID_CALLBACK_PARAM') throw err
    throw invalidOption(`callbackUrl is not a URL OSS can call: ${err.reason ?? 'invalid'}`)
  }
  const allowWithout = options.allowCallbacksWithoutTicket ?? false
  const store = options.store ?? createMemoryTicketStore({ now: options.now })
  const now = options.now ?? Date.now
  const graceMs = graceSeconds * 1000

  function keyFor (request: TicketRequest): string {
    let key: string
    if (request.key !== undefined) {
      const k = request.key
      const segments = k.split('/')
      if (k === '' || k.startsWith('/') || !isSafeKeyText(k) || segments.some((s) => s === '' || s === '.' || s === '..')) {
        throw badRequest('suggested key is not a safe relative key')
      }
      key = prefix + k
    } else {
      key = `${prefix}${randomBytes(12).toString('base64url')}/${sanitiseFilename(request.filename)}`
    }
    if (Buffer.byteLength(key) > MAX_OBJECT_KEY_BYTES) throw badRequest('key is too long')
    return key
  }

  function contentTypesFor (request: TicketRequest): string[] | undefined {
    if (request.contentType === undefined) return allowedTypes
    const type = request.contentType.trim().toLowerCase()
    if (!CONTENT_TYPE.test(type)) throw badRequest('contentType is not a type/subtype value')
    if (allowedTypes !== undefined && !allowedTypes.includes(type)) throw ossError('TICKET_CONTENT_TYPE', 'content type not on the allowlist')
    return [type]
  }

  async function issue (request: TicketRequest, grant: TicketGrant = {}): Promise<IssuedTicket> {
    if (request.size !== undefined && request.size > maxSizeBytes) throw ossError('TICKET_TOO_LARGE', 'declared size over the maximum')
    const subject = grant.subject
    // eslint-disable-next-line no-control-regex
    if (subject !== undefined && (typeof subject !== 'string' || subject.length > MAX_SUBJECT_CHARS || /[\u0000-\u001f\u007f]/.test(subject))) {
      throw badRequest('subject is not a printable string of at most 256 characters')
    }
    const types = contentTypesFor(request)
    const key = keyFor(request)
    const id = randomBytes(18).toString('base64url')
    const nowMs = now()
    const date = new Date(nowMs)
    const minSize = request.size ?? 0
    const maxSize = request.size ?? maxSizeBytes
    const form = createPostForm({
      now: date, expiresInSeconds: expirySeconds, bucket, key, minSizeBytes: minSize, maxSizeBytes: maxSize,
      contentTypes: types, callback, vars: { [TICKET_VAR]: id }
    }, { accessKeyId, accessKeySecret, region }, version)
    const ticket: UploadTicket = {
      id, bucket, key, minSizeBytes: minSize, maxSizeBytes: maxSize,
      ...(types === undefined ? {} : { contentTypes: types }),
      ...(subject === undefined ? {} : { subject }),
      issuedAt: date.toISOString(),
      expiresAt: form.policy.expiration
    }
    try {
      await store.save(ticket, expirySeconds * 1000 + graceMs + REMEMBER_AFTER_MS)
    } catch (cause) {
      throw ossError('TICKET_STORE_FAILED', 'ticket store refused the ticket', cause)
    }
    return { ticket: id, uploadUrl, key, expiresAt: ticket.expiresAt, maxSizeBytes: maxSize, fields: form.fields }
  }

  async function bind (callback: Pick<ParsedCallbackBody, 'system' | 'vars'>, options?: TicketConsumeOptions): Promise<UploadTicket | undefined> {
    const id = callback.vars[TICKET_VAR]
    if (id === undefined || id === '') {
      if (allowWithout) return undefined
      throw ossError('TICKET_MISSING', 'callback has no x:ticket')
    }
    if (!TICKET_ID.test(id)) throw ossError('TICKET_UNKNOWN', 'ticket id is malformed')
    let result
    try {
      result = await store.consume(id, options)
    } catch (cause) {
      if (isOssCallbackError(cause)) throw cause
      throw ossError('TICKET_STORE_FAILED', 'ticket store did not answer', cause)
    }
    if (result.status === 'unknown') throw ossError('TICKET_UNKNOWN', 'no such ticket')
    if (result.status === 'used') throw ossError('TICKET_USED', 'ticket already consumed: replay')
    const ticket = result.ticket
    if (now() > Date.parse(ticket.expiresAt) + graceMs) throw ossError('TICKET_EXPIRED', 'callback after the ticket expired')
    const { bucket: b, object, size } = callback.system
    if (b !== ticket.bucket || object !== ticket.key || size === undefined || size < ticket.minSizeBytes || size > ticket.maxSizeBytes) {
      throw ossError('TICKET_MISMATCH', 'bucket, key or size differs from the ticket')
    }
    return ticket
  }

  async function bindCallback (callback: Pick<ParsedCallbackBody, 'system' | 'vars'>, context: { deadlineAt: number }): Promise<TicketContext> {
    const ticket = await bind(callback, { deadlineAt: context.deadlineAt })
    return ticket === undefined ? {} : { ticket }
  }

  const ownsStore = options.store === undefined
  return {
    issue,
    bind,
    bindCallback,
    store,
    allowCallbacksWithoutTicket: allowWithout,
    close: async () => { if (ownsStore) await store.close() }
  }
}
