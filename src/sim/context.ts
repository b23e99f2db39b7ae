import { createHash, type KeyObject } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Target } from './addressing.js'
import type { SimCredentials } from './auth.js'
import { OSS_ERRORS, OssHttpError } from './oss-error.js'
import type { ObjectStore, StoredObject } from './store.js'
import { errorXml } from './xml.js'

/** The region reported in host ids and object locations. */
export const REGION_ENDPOINT = 'oss-cn-hangzhou.aliyuncs.com'
export const OWNER_ID = '1000000000000000'
export const MAX_KEY_BYTES = 1023
export const MAX_XML_BYTES = 1024 * 1024
const BUCKET_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/

/** One part of a multipart upload. */
export interface UploadedPart {
  data: Buffer
  /** Upper-case hex MD5, no quotes. */
  etag: string
  crc64: string
  lastModified: Date
}

/** A multipart upload in progress. */
export interface Upload {
  bucket: string
  key: string
  initiated: Date
  contentType: string
  meta: Record<string, string>
  parts: Map<number, UploadedPart>
}

/** What every operation handler shares: the store, the uploads in progress, the options, the signing key. */
export interface SimContext {
  store: ObjectStore
  uploads: Map<string, Upload>
  credentials: Readonly<SimCredentials>
  strict: boolean
  now: () => Date
  log: (line: string) => void
  callbackTimeoutMs: number
  maxObjectBytes: number
  callbackTrustedCa: readonly string[] | undefined
  privateKey: KeyObject
  /** Known once listening (it holds the port). */
  publicKeyUrl: string
}

/** One request as the operation handlers see it. */
export interface SimRequest {
  request: FastifyRequest
  reply: FastifyReply
  target: Target
  headers: Record<string, string>
  requestId: string
}

export function hostId (bucket: string | undefined): string {
  return bucket === undefined ? REGION_ENDPOINT : `${bucket}.${REGION_ENDPOINT}`
}

export function objectLocation (bucket: string, key: string): string {
  return `http://${bucket}.${REGION_ENDPOINT}/${encodeURIComponent(key).replaceAll('%2F', '/')}`
}

export function sendOssError (reply: FastifyReply, err: OssHttpError, requestId: string, bucket: string | undefined, head = false): FastifyReply {
  if (err.ec !== undefined) reply.header('x-oss-ec', err.ec)
  // A HEAD answer has no body: OSS sends the status and headers only.
  if (head) return reply.code(err.status).send()
  return reply.code(err.status).type('application/xml')
    .send(errorXml({ code: err.code, message: err.message, requestId, hostId: hostId(bucket), ...(err.ec === undefined ? {} : { ec: err.ec }), ...(err.extra === undefined ? {} : { extra: err.extra }) }))
}

export function headerMap (req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(',') : v
  }
  return out
}

export function queryGet (t: Target, name: string): string | undefined {
  return t.query.find(([k]) => k === name)?.[1]
}

export function queryHas (t: Target, name: string): boolean {
  return t.query.some(([k]) => k === name)
}

export async function readBody (req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  // With both Transfer-Encoding and Content-Length (the C SDK), the chunked framing wins.
  if (req.headers['transfer-encoding'] === undefined && declared !== undefined && Number(declared) > limit) throw OSS_ERRORS.entityTooLarge()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw OSS_ERRORS.entityTooLarge()
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size)
}

export function md5 (data: Buffer): Buffer {
  return createHash('md5').update(data).digest()
}

export function metaHeaders (headers: Record<string, string>): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('x-oss-meta-')) meta[k] = v
  return meta
}

export function checkBucket (t: Target): string {
  const bucket = t.bucket ?? ''
  if (!BUCKET_NAME.test(bucket)) throw OSS_ERRORS.invalidBucketName(bucket)
  return bucket
}

export function checkKey (key: string): string {
  if (key === '' || Buffer.byteLength(key) > MAX_KEY_BYTES || key.startsWith('/') || key.startsWith('\\')) throw OSS_ERRORS.invalidObjectName()
  return key
}

export function checkBucketAndKey (t: Target): { bucket: string, key: string } {
  return { bucket: checkBucket(t), key: checkKey(t.key ?? '') }
}

/** An ETag as OSS writes it in headers and XML: upper-case hex in double quotes. */
export function quotedEtag (etag: string): string {
  return `"${etag}"`
}

export function objectHeaders (o: StoredObject): Record<string, string> {
  return {
    etag: quotedEtag(o.etag),
    'x-oss-hash-crc64ecma': o.crc64,
    ...(o.contentMd5 === undefined ? {} : { 'content-md5': o.contentMd5 })
  }
}

/** An integer query parameter within bounds, or the default; InvalidArgument otherwise. */
export function queryInteger (t: Target, name: string, min: number, max: number, fallback: number): number {
  const text = queryGet(t, name)
  if (text === undefined || text === '') return fallback
  if (!/^\d{1,10}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw OSS_ERRORS.invalidArgument(`Argument ${name} must be an integer from ${min} to ${max}.`)
  }
  return Number(text)
}

/** `encoding-type`: `url` encodes keys, prefixes and markers in the answer; nothing else is accepted. */
export function encodingOf (t: Target): ((s: string) => string) & { url: boolean } {
  const type = queryGet(t, 'encoding-type')
  if (type !== undefined && type !== '' && type.toLowerCase() !== 'url') throw OSS_ERRORS.invalidArgument('The encoding-type must be url.')
  const url = type !== undefined && type.toLowerCase() === 'url'
  const encode = url
    ? (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    : (s: string): string => s
  return Object.assign(encode, { url })
}

/** A time in XML, as OSS writes it: ISO 8601 UTC with milliseconds. */
export function xmlTime (d: Date): string {
  return d.toISOString()
}

export { OssHttpError }
