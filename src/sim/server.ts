import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import multipart from '@fastify/multipart'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { invalidOption } from '../errors.js'
import type { CallbackBodyValues } from '../protocol/body.js'
import { CALLBACK_PARAM_MESSAGES, decodeCallbackParam, type DecodedCallbackParam } from '../protocol/callback-param.js'
import { crc64 } from '../protocol/crc64.js'
import { V1_SIGNED_SUBRESOURCES } from '../protocol/oss-signing.js'
import { parseTarget, type Target } from './addressing.js'
import { checkRequestSignature, SIM_DEV_CREDENTIALS, type SimCredentials } from './auth.js'
import { dispatchCallback, OSS_CALLBACK_TIMEOUT_MS, type DispatchResult } from './callback-dispatch.js'
import { OSS_ERRORS, OssHttpError } from './oss-error.js'
import { checkPostPolicy, checkPostSignature } from './post-policy.js'
import { fireTestCallback, SEND_PATH } from './send-endpoint.js'
import { DiskStore, factsOf, MemoryStore, type ObjectFacts, type ObjectStore, type StoredObject } from './store.js'
import { errorXml, parseCompleteMultipartUpload, xmlDocument } from './xml.js'

export { SIM_DEV_CREDENTIALS }

/** Options of {@link startSimulator}. */
export interface SimulatorOptions {
  /** TCP port; 0 picks a free one. Default 8090. */
  port?: number
  /** Address to listen on. Default `127.0.0.1`. */
  host?: string
  /** Keep objects on disk here (and the signing key, so its URL stays valid across restarts). Default: in memory. */
  dataDir?: string
  /** Accepted credentials. Default {@link SIM_DEV_CREDENTIALS}. */
  credentials?: SimCredentials
  /** Refuse private, loopback and IPv6 callback hosts as real OSS does. Default false. */
  strict?: boolean
  /** Callback reply timeout per URL, ms. Default 5000, as OSS. */
  callbackTimeoutMs?: number
  /** Largest object or part accepted, bytes. Default 1 GiB (OSS: 5 GiB; the simulator holds bodies in memory). */
  maxObjectBytes?: number
  /** Origin receivers fetch the public key from. Default `http://<host>:<port>` (`127.0.0.1` when listening on all addresses). */
  publicOrigin?: string
  /** The RSA key that signs callbacks. Default: generated (512-bit, as OSS's), or kept in `dataDir`. */
  privateKey?: KeyObject
  /** PEM certificates trusted for https callback URLs besides Node's root store (a local CA such as mkcert's). Default: none. */
  callbackTrustedCa?: readonly string[]
  /** One line per request, for a terminal. Default: silent. */
  log?: (line: string) => void
  /** Clock, for signature and policy expiry checks. Default `() => new Date()`. */
  now?: () => Date
}

/** A running simulator. */
export interface Simulator {
  /** `http://127.0.0.1:<port>`: what clients use as the endpoint and receivers trust. */
  origin: string
  /** The URL of the public key callbacks are signed with. */
  publicKeyUrl: string
  /** The accepted access key pair. */
  credentials: Readonly<SimCredentials>
  /** The port listened on. */
  port: number
  close: () => Promise<void>
}

/** The region reported in host ids and object locations. */
const REGION_ENDPOINT = 'oss-cn-hangzhou.aliyuncs.com'
const OWNER_ID = '1000000000000000'
const MIN_PART_BYTES = 100 * 1024
const MAX_PART_NUMBER = 10_000
const MAX_KEY_BYTES = 1023
const MAX_XML_BYTES = 1024 * 1024
const BUCKET_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/
const KEY_FILE = 'callback-key.pem'
/** Query parameters that do not change which of the implemented operations a request is. */
const HANDLED_SUBRESOURCES: ReadonlySet<string> = new Set([
  'uploads', 'uploadId', 'partNumber', 'callback', 'callback-var', 'security-token', 'response-content-type',
  'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition',
  'response-content-encoding'
])

interface Upload {
  bucket: string
  key: string
  contentType: string
  meta: Record<string, string>
  parts: Map<number, { data: Buffer, etag: string }>
}

function validateOptions (o: SimulatorOptions): Required<Pick<SimulatorOptions, 'port' | 'host' | 'callbackTimeoutMs' | 'maxObjectBytes'>> {
  const port = o.port ?? 8090
  const host = o.host ?? '127.0.0.1'
  const callbackTimeoutMs = o.callbackTimeoutMs ?? OSS_CALLBACK_TIMEOUT_MS
  const maxObjectBytes = o.maxObjectBytes ?? 1024 * 1024 * 1024
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('port must be an integer from 0 to 65535')
  if (typeof host !== 'string' || host === '') throw invalidOption('host must be a non-empty address')
  if (!Number.isInteger(callbackTimeoutMs) || callbackTimeoutMs < 1 || callbackTimeoutMs > 60_000) {
    throw invalidOption('callbackTimeoutMs must be an integer from 1 to 60000')
  }
  if (!Number.isSafeInteger(maxObjectBytes) || maxObjectBytes < 1) throw invalidOption('maxObjectBytes must be a positive integer')
  if (o.credentials !== undefined && (o.credentials.accessKeyId === '' || o.credentials.accessKeySecret === '')) {
    throw invalidOption('credentials need a non-empty access key id and secret')
  }
  if (o.publicOrigin !== undefined) {
    let url: URL | undefined
    try { url = new URL(o.publicOrigin) } catch { url = undefined }
    if (url === undefined || url.origin !== o.publicOrigin.replace(/\/$/, '')) throw invalidOption('publicOrigin must be a bare http(s) origin such as http://127.0.0.1:8090')
  }
  return { port, host, callbackTimeoutMs, maxObjectBytes }
}

function generateSigningKey (): KeyObject {
  // 512 bits like OSS's own key; OpenSSL builds with a hardened policy refuse that, so step up.
  for (const modulusLength of [512, 1024]) {
    try {
      return generateKeyPairSync('rsa', { modulusLength, publicExponent: 65537 }).privateKey
    } catch {
      continue
    }
  }
  return generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 }).privateKey
}

async function loadOrCreateKey (dataDir: string | undefined): Promise<KeyObject> {
  if (dataDir === undefined) return generateSigningKey()
  const file = join(dataDir, KEY_FILE)
  try {
    return createPrivateKey(await readFile(file, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const key = generateSigningKey()
  await mkdir(dataDir, { recursive: true })
  await writeFile(file, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  return key
}

function newRequestId (): string {
  return randomBytes(12).toString('hex').toUpperCase()
}

function headerMap (req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(',') : v
  }
  return out
}

function queryGet (t: Target, name: string): string | undefined {
  return t.query.find(([k]) => k === name)?.[1]
}

function queryHas (t: Target, name: string): boolean {
  return t.query.some(([k]) => k === name)
}

async function readBody (req: IncomingMessage, limit: number): Promise<Buffer> {
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

function md5 (data: Buffer): Buffer {
  return createHash('md5').update(data).digest()
}

function metaHeaders (headers: Record<string, string>): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('x-oss-meta-')) meta[k] = v
  return meta
}

const CALLBACK_EC: Readonly<Record<string, string>> = {
  [CALLBACK_PARAM_MESSAGES.badUrl]: '0007-00000004',
  [CALLBACK_PARAM_MESSAGES.badPort]: '0007-00000004',
  [CALLBACK_PARAM_MESSAGES.privateIp]: '0007-00000008',
  [CALLBACK_PARAM_MESSAGES.emptyBody]: '0007-00000011',
  [CALLBACK_PARAM_MESSAGES.varTooLong]: '0007-00000101'
}

function decodeCallback (callback: string | undefined, callbackVar: string | undefined, strict: boolean): DecodedCallbackParam | undefined {
  if (callback === undefined || callback === '') return undefined
  try {
    return decodeCallbackParam(callback, callbackVar, { strict })
  } catch (err) {
    const reason = (err as { reason?: string }).reason ?? CALLBACK_PARAM_MESSAGES.notJson
    throw OSS_ERRORS.invalidArgument(reason, CALLBACK_EC[reason])
  }
}

/** The callback parameters of a PutObject or CompleteMultipartUpload: header or query form, never both. */
function callbackOf (t: Target, headers: Record<string, string>, strict: boolean): DecodedCallbackParam | undefined {
  const inHeader = headers['x-oss-callback'] !== undefined || headers['x-oss-callback-var'] !== undefined
  const inQuery = queryHas(t, 'callback') || queryHas(t, 'callback-var')
  if (inHeader && inQuery) throw OSS_ERRORS.invalidArgument('The callback is given both in the header and in the query.')
  return inHeader
    ? decodeCallback(headers['x-oss-callback'], headers['x-oss-callback-var'], strict)
    : decodeCallback(queryGet(t, 'callback'), queryGet(t, 'callback-var'), strict)
}

function objectHeaders (o: StoredObject): Record<string, string> {
  return {
    etag: `"${o.etag}"`,
    'x-oss-hash-crc64ecma': o.crc64,
    ...(o.contentMd5 === undefined ? {} : { 'content-md5': o.contentMd5 })
  }
}

/** Starts the simulator and resolves once it listens. */
export async function startSimulator (options: SimulatorOptions = {}): Promise<Simulator> {
  const { port, host, callbackTimeoutMs, maxObjectBytes } = validateOptions(options)
  const credentials = Object.freeze({ ...(options.credentials ?? SIM_DEV_CREDENTIALS) })
  const strict = options.strict === true
  const now = options.now ?? (() => new Date())
  const log = options.log ?? (() => {})
  const store: ObjectStore = options.dataDir === undefined ? new MemoryStore() : new DiskStore(options.dataDir)
  const privateKey = options.privateKey ?? await loadOrCreateKey(options.dataDir)
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' })
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString()
  // The key's fingerprint is in its URL: receivers cache keys by URL, so a new key must get a new URL.
  const keyPath = `/callback_pub_key_sim_${createHash('sha256').update(spki).digest('hex').slice(0, 16)}.pem`
  const uploads = new Map<string, Upload>()

  const app: FastifyInstance = Fastify({
    logger: false,
    // OSS accepts Transfer-Encoding: chunked together with Content-Length (the C SDK sends both);
    // Node's strict parser answers 400. Body sizes are limited in readBody instead.
    http: { insecureHTTPParser: true },
    exposeHeadRoutes: false,
    bodyLimit: maxObjectBytes,
    routerOptions: { maxParamLength: 8192, ignoreDuplicateSlashes: false },
    // Browsers keep spare sockets that never send a request; without this, close() waits out the headers timeout.
    forceCloseConnections: true
  })
  app.removeAllContentTypeParsers()
  await app.register(multipart, {
    isPartAFile: (fieldName) => fieldName === 'file',
    limits: { fileSize: maxObjectBytes, files: 1, fields: 200, fieldSize: 64 * 1024, parts: 202 }
  })
  // Every other body is read in the handler, streamed, with the simulator's own limit.
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  let origin = ''
  let publicKeyUrl = ''
  const ownHosts = new Set<string>(['localhost', host.toLowerCase()])

  function hostId (bucket: string | undefined): string {
    return bucket === undefined ? REGION_ENDPOINT : `${bucket}.${REGION_ENDPOINT}`
  }

  function sendOssError (reply: FastifyReply, err: OssHttpError, requestId: string, bucket: string | undefined): FastifyReply {
    if (err.ec !== undefined) reply.header('x-oss-ec', err.ec)
    return reply.code(err.status).type('application/xml')
      .send(errorXml({ code: err.code, message: err.message, requestId, hostId: hostId(bucket), ...(err.ec === undefined ? {} : { ec: err.ec }), ...(err.extra === undefined ? {} : { extra: err.extra }) }))
  }

  async function runCallback (param: DecodedCallbackParam, object: ObjectFacts, operation: string, requestId: string, clientIp: string, vars: Record<string, string>): Promise<DispatchResult> {
    const image = object.image
    const values: CallbackBodyValues = {
      system: {
        bucket: object.bucket,
        object: object.key,
        etag: object.etag,
        size: object.size,
        mimeType: object.contentType,
        'imageInfo.height': image?.height,
        'imageInfo.width': image?.width,
        'imageInfo.format': image?.format,
        crc64: object.crc64,
        contentMd5: object.contentMd5 ?? '',
        vpcId: '',
        clientIp,
        reqId: requestId,
        operation
      },
      vars: { ...param.vars, ...vars }
    }
    return await dispatchCallback(param, values, {
      privateKey, publicKeyUrl, requestId, bucket: object.bucket, ownerId: OWNER_ID, timeoutMs: callbackTimeoutMs, strict, now,
      ...(options.callbackTrustedCa === undefined ? {} : { trustedCa: options.callbackTrustedCa })
    })
  }

  /** Answers an upload that carried a callback: the reply relayed with 200, or 203 CallbackFailed. */
  function sendCallbackOutcome (reply: FastifyReply, result: DispatchResult, headers: Record<string, string>, requestId: string, bucket: string): FastifyReply {
    reply.headers(headers)
    if (result.ok) return reply.code(200).type('application/json').send(result.body)
    reply.header('x-oss-ec', '0007-00000203')
    return reply.code(203).type('application/xml').send(errorXml({
      code: 'CallbackFailed', message: result.message ?? '', requestId, hostId: hostId(bucket), ec: '0007-00000203'
    }))
  }

  function describeCallback (result: DispatchResult | undefined): string {
    if (result === undefined) return ''
    const last = result.attempts.at(-1)
    return result.ok ? ` callback ${last?.url ?? ''} -> 200` : ` callback failed: ${result.message ?? ''}`
  }

  function checkBucketAndKey (t: Target, needKey: boolean): { bucket: string, key: string } {
    const bucket = t.bucket ?? ''
    if (!BUCKET_NAME.test(bucket)) throw OSS_ERRORS.invalidBucketName(bucket)
    const key = t.key ?? ''
    if (needKey && (key === '' || Buffer.byteLength(key) > MAX_KEY_BYTES || key.startsWith('/') || key.startsWith('\\'))) {
      throw OSS_ERRORS.invalidObjectName()
    }
    return { bucket, key }
  }

  async function putObject (request: FastifyRequest, reply: FastifyReply, t: Target, headers: Record<string, string>, requestId: string): Promise<FastifyReply> {
    const { bucket, key } = checkBucketAndKey(t, true)
    if (headers['x-oss-copy-source'] !== undefined) throw OSS_ERRORS.notImplemented()
    const callback = callbackOf(t, headers, strict)
    const data = await readBody(request.raw, maxObjectBytes)
    const digest = md5(data)
    if (headers['content-md5'] !== undefined && headers['content-md5'] !== digest.toString('base64')) throw OSS_ERRORS.invalidDigest()
    const object: StoredObject = {
      bucket,
      key,
      data,
      contentType: headers['content-type'] ?? 'application/octet-stream',
      etag: digest.toString('hex').toUpperCase(),
      crc64: crc64(data).toString(),
      contentMd5: digest.toString('base64'),
      lastModified: now(),
      meta: metaHeaders(headers),
      objectType: 'Normal'
    }
    await store.put(object)
    const result = callback === undefined ? undefined : await runCallback(callback, factsOf(object), 'PutObject', requestId, request.ip, {})
    log(`PUT ${bucket}/${key} ${data.length} B${describeCallback(result)}`)
    if (result !== undefined) return sendCallbackOutcome(reply, result, objectHeaders(object), requestId, bucket)
    return reply.code(200).headers(objectHeaders(object)).send()
  }

  async function getObject (request: FastifyRequest, reply: FastifyReply, t: Target, head: boolean): Promise<FastifyReply> {
    const { bucket, key } = checkBucketAndKey(t, true)
    const object = await store.get(bucket, key)
    if (object === undefined) throw OSS_ERRORS.noSuchKey(key)
    reply.headers({
      ...objectHeaders(object),
      ...object.meta,
      'content-type': object.contentType,
      'last-modified': object.lastModified.toUTCString(),
      'x-oss-object-type': object.objectType,
      'accept-ranges': 'bytes'
    })
    if (head) {
      reply.header('content-length', String(object.data.length))
      return reply.code(200).send()
    }
    // One range, `bytes=a-b`, `bytes=a-` or `bytes=-n`; OSS ignores a Range it cannot read and sends the whole object.
    const range = /^bytes=(\d*)-(\d*)$/.exec(request.headers.range ?? '')
    if (range !== null && (range[1] !== '' || range[2] !== '')) {
      const size = object.data.length
      const start = range[1] === '' ? Math.max(0, size - Number(range[2])) : Number(range[1])
      const end = range[1] === '' || range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1)
      if (start >= size) throw OSS_ERRORS.invalidRange()
      if (start <= end) {
        reply.header('content-range', `bytes ${start}-${end}/${size}`)
        return reply.code(206).send(object.data.subarray(start, end + 1))
      }
    }
    return reply.code(200).send(object.data)
  }

  async function initiateUpload (reply: FastifyReply, t: Target, headers: Record<string, string>): Promise<FastifyReply> {
    const { bucket, key } = checkBucketAndKey(t, true)
    const uploadId = randomBytes(16).toString('hex').toUpperCase()
    uploads.set(uploadId, { bucket, key, contentType: headers['content-type'] ?? 'application/octet-stream', meta: metaHeaders(headers), parts: new Map() })
    log(`POST ${bucket}/${key}?uploads -> ${uploadId}`)
    return reply.code(200).type('application/xml')
      .send(xmlDocument('InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: uploadId }))
  }

  function uploadOf (t: Target, bucket: string, key: string): [string, Upload] {
    const uploadId = queryGet(t, 'uploadId') ?? ''
    const upload = uploads.get(uploadId)
    if (upload === undefined || upload.bucket !== bucket || upload.key !== key) throw OSS_ERRORS.noSuchUpload(uploadId)
    return [uploadId, upload]
  }

  async function uploadPart (request: FastifyRequest, reply: FastifyReply, t: Target): Promise<FastifyReply> {
    const { bucket, key } = checkBucketAndKey(t, true)
    const [, upload] = uploadOf(t, bucket, key)
    const partText = queryGet(t, 'partNumber') ?? ''
    const partNumber = /^\d{1,5}$/.test(partText) ? Number(partText) : 0
    if (partNumber < 1 || partNumber > MAX_PART_NUMBER) throw OSS_ERRORS.invalidArgument('Part number must be an integer between 1 and 10000, inclusive.')
    const data = await readBody(request.raw, maxObjectBytes)
    const digest = md5(data)
    const contentMd5 = request.headers['content-md5']
    if (contentMd5 !== undefined && contentMd5 !== digest.toString('base64')) throw OSS_ERRORS.invalidDigest()
    const etag = digest.toString('hex').toUpperCase()
    upload.parts.set(partNumber, { data, etag })
    return reply.code(200).headers({ etag: `"${etag}"`, 'x-oss-hash-crc64ecma': crc64(data).toString(), 'content-md5': digest.toString('base64') }).send()
  }

  async function completeUpload (request: FastifyRequest, reply: FastifyReply, t: Target, headers: Record<string, string>, requestId: string): Promise<FastifyReply> {
    const { bucket, key } = checkBucketAndKey(t, true)
    const [uploadId, upload] = uploadOf(t, bucket, key)
    const callback = callbackOf(t, headers, strict)
    const body = await readBody(request.raw, MAX_XML_BYTES)
    let list: Array<{ partNumber: number, etag: string }>
    if ((headers['x-oss-complete-all'] ?? '').toLowerCase() === 'yes') {
      list = [...upload.parts.entries()].sort(([a], [b]) => a - b).map(([partNumber, p]) => ({ partNumber, etag: p.etag }))
    } else {
      const parsed = parseCompleteMultipartUpload(body)
      if (parsed === undefined || parsed.length === 0) throw OSS_ERRORS.malformedXml()
      list = parsed
    }
    const chosen: Buffer[] = []
    const digests: Buffer[] = []
    for (const [i, p] of list.entries()) {
      if (i > 0 && p.partNumber <= (list[i - 1] as { partNumber: number }).partNumber) throw OSS_ERRORS.invalidPartOrder()
      const part = upload.parts.get(p.partNumber)
      if (part === undefined || part.etag !== p.etag) throw OSS_ERRORS.invalidPart()
      if (i < list.length - 1 && part.data.length < MIN_PART_BYTES) throw OSS_ERRORS.entityTooSmall()
      chosen.push(part.data)
      digests.push(Buffer.from(part.etag, 'hex'))
    }
    const data = Buffer.concat(chosen)
    const object: StoredObject = {
      bucket,
      key,
      data,
      contentType: upload.contentType,
      // OSS's multipart ETag: MD5 of the parts' binary MD5s, then -<count>.
      etag: `${md5(Buffer.concat(digests)).toString('hex').toUpperCase()}-${list.length}`,
      crc64: crc64(data).toString(),
      lastModified: now(),
      meta: upload.meta,
      objectType: 'Multipart'
    }
    await store.put(object)
    uploads.delete(uploadId)
    const result = callback === undefined ? undefined : await runCallback(callback, factsOf(object), 'CompleteMultipartUpload', requestId, request.ip, {})
    log(`POST ${bucket}/${key}?uploadId ${list.length} parts ${data.length} B${describeCallback(result)}`)
    const resultHeaders = { etag: `"${object.etag}"`, 'x-oss-hash-crc64ecma': object.crc64 }
    if (result !== undefined) return sendCallbackOutcome(reply, result, resultHeaders, requestId, bucket)
    return reply.code(200).headers(resultHeaders).type('application/xml').send(xmlDocument('CompleteMultipartUploadResult', {
      Location: `http://${bucket}.${REGION_ENDPOINT}/${encodeURIComponent(key).replaceAll('%2F', '/')}`,
      Bucket: bucket,
      Key: key,
      ETag: `"${object.etag}"`
    }))
  }

  async function postObject (request: FastifyRequest, reply: FastifyReply, t: Target, requestId: string): Promise<FastifyReply> {
    const bucket = t.bucket ?? ''
    if (!BUCKET_NAME.test(bucket)) throw OSS_ERRORS.invalidBucketName(bucket)
    const fields = new Map<string, string>()
    const vars: Record<string, string> = {}
    let file: { data: Buffer, filename: string, mimetype: string } | undefined
    try {
      for await (const part of request.parts()) {
        // OSS reads the fields before `file` and ignores the rest.
        if (file !== undefined) {
          if (part.type === 'file') part.file.resume()
          continue
        }
        if (part.type === 'file') {
          file = { data: await part.toBuffer(), filename: part.filename, mimetype: part.mimetype }
          continue
        }
        const value = typeof part.value === 'string' ? part.value : String(part.value)
        const name = part.fieldname.toLowerCase()
        if (!fields.has(name)) fields.set(name, value)
        if (name.startsWith('x:')) vars[name] = value
      }
    } catch (err) {
      if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw OSS_ERRORS.entityTooLarge()
      throw OSS_ERRORS.malformedPost('The body of your POST request is not well-formed multipart/form-data.')
    }
    if (file === undefined) throw OSS_ERRORS.invalidArgument('The form has no file field (it must be the last field).')
    const signature = checkPostSignature(fields, credentials)
    checkPostPolicy({ bucket, fields, size: file.data.length, now: now(), signature })
    const rawKey = fields.get('key') ?? ''
    const key = rawKey.replaceAll('${filename}', file.filename)
    if (key === '' || Buffer.byteLength(key) > MAX_KEY_BYTES || key.startsWith('/') || key.startsWith('\\')) throw OSS_ERRORS.invalidObjectName()
    const callback = decodeCallback(fields.get('callback'), fields.get('callback-var'), strict)
    const digest = md5(file.data)
    if (fields.has('content-md5') && fields.get('content-md5') !== digest.toString('base64')) throw OSS_ERRORS.invalidDigest()
    const meta: Record<string, string> = {}
    for (const [k, v] of fields) if (k.startsWith('x-oss-meta-')) meta[k] = v
    const object: StoredObject = {
      bucket,
      key,
      data: file.data,
      contentType: fields.get('content-type') ?? (file.mimetype === '' ? 'application/octet-stream' : file.mimetype),
      etag: digest.toString('hex').toUpperCase(),
      crc64: crc64(file.data).toString(),
      contentMd5: digest.toString('base64'),
      lastModified: now(),
      meta,
      objectType: 'Normal'
    }
    await store.put(object)
    const result = callback === undefined ? undefined : await runCallback(callback, factsOf(object), 'PostObject', requestId, request.ip, vars)
    log(`POST ${bucket}/${key} (form) ${file.data.length} B${describeCallback(result)}`)
    if (result !== undefined) return sendCallbackOutcome(reply, result, objectHeaders(object), requestId, bucket)
    reply.headers(objectHeaders(object))
    const status = fields.get('success_action_status')
    if (status === '200') return reply.code(200).send()
    if (status === '201') {
      return reply.code(201).type('application/xml').send(xmlDocument('PostResponse', {
        Bucket: bucket,
        Location: `http://${bucket}.${REGION_ENDPOINT}/${encodeURIComponent(key).replaceAll('%2F', '/')}`,
        Key: key,
        ETag: `"${object.etag}"`
      }))
    }
    return reply.code(204).send()
  }

  async function route (request: FastifyRequest, reply: FastifyReply, requestId: string, t: Target): Promise<FastifyReply> {
    const method = request.method
    const headers = headerMap(request.raw)
    if (t.pathStyle && t.bucket === undefined) {
      if (method === 'GET' || method === 'HEAD') return reply.code(200).type('application/json').send({ service: 'oss-callback simulator', publicKeyUrl })
      throw OSS_ERRORS.notImplemented()
    }
    if (t.pathStyle && method === 'GET' && t.path === keyPath) return reply.code(200).type('application/x-pem-file').send(publicPem)
    if (t.pathStyle && t.bucket === '-') {
      if (t.path === '/-/health' && method === 'GET') return reply.code(200).send({ status: 'ok' })
      if (t.path === SEND_PATH && method === 'POST') {
        checkRequestSignature({ method, query: t.query, headers, now: now(), resource: SEND_PATH }, credentials)
        return await fireTestCallback(request, reply, {
          store, strict, now, requestId, timeoutMs: callbackTimeoutMs,
          run: async (param, object, vars) => {
            const result = await runCallback(param, object, 'PutObject', requestId, request.ip, vars)
            log(`send ${object.bucket}/${object.key}${describeCallback(result)}`)
            return result
          }
        })
      }
      throw OSS_ERRORS.notImplemented()
    }
    const isForm = method === 'POST' && t.key === undefined && (request.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')
    if (isForm) return await postObject(request, reply, t, requestId)
    checkBucketAndKey(t, false)
    checkRequestSignature({ method, bucket: t.bucket, key: t.key, query: t.query, headers, now: now() }, credentials)
    // `?acl`, `?tagging`, `?append`, … are other operations on the same path: never mistake them for these.
    if (t.key === undefined || t.query.some(([k]) => V1_SIGNED_SUBRESOURCES.has(k) && !HANDLED_SUBRESOURCES.has(k))) throw OSS_ERRORS.notImplemented()
    switch (method) {
      case 'PUT':
        return queryHas(t, 'uploadId') ? await uploadPart(request, reply, t) : await putObject(request, reply, t, headers, requestId)
      case 'GET':
        return await getObject(request, reply, t, false)
      case 'HEAD':
        return await getObject(request, reply, t, true)
      case 'DELETE': {
        const { bucket, key } = checkBucketAndKey(t, true)
        if (queryHas(t, 'uploadId')) {
          const [uploadId] = uploadOf(t, bucket, key)
          uploads.delete(uploadId)
        } else {
          await store.delete(bucket, key)
        }
        return reply.code(204).send()
      }
      case 'POST':
        if (queryHas(t, 'uploads')) return await initiateUpload(reply, t, headers)
        if (queryHas(t, 'uploadId')) return await completeUpload(request, reply, t, headers, requestId)
        throw OSS_ERRORS.notImplemented()
      default:
        throw OSS_ERRORS.notImplemented()
    }
  }

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS'],
    url: '*',
    handler: async (request, reply) => {
      const requestId = newRequestId()
      // Browsers upload to OSS directly (PostObject); the simulator allows any origin, as a permissive bucket CORS rule would.
      reply.headers({
        'x-oss-request-id': requestId,
        server: 'AliyunOSS',
        date: now().toUTCString(),
        'access-control-allow-origin': '*',
        'access-control-expose-headers': 'ETag, x-oss-request-id, x-oss-hash-crc64ecma, Content-MD5'
      })
      if (request.method === 'OPTIONS') {
        return reply.code(200).headers({
          'access-control-allow-methods': 'GET, HEAD, PUT, POST, DELETE',
          'access-control-allow-headers': request.headers['access-control-request-headers'] ?? '*',
          'access-control-max-age': '600'
        }).send()
      }
      let t: Target | undefined
      try {
        t = parseTarget(request.raw.url ?? '/', request.headers.host, ownHosts)
        return await route(request, reply, requestId, t)
      } catch (err) {
        if (err instanceof OssHttpError) {
          log(`${request.method} ${request.raw.url ?? ''} -> ${err.status} ${err.code}`)
          if (!request.raw.complete) {
            // Refused before the upload body was read (a bad signature): discard the rest and close, so a client
            // still streaming its body is neither stalled by back-pressure nor left waiting on a half-read request.
            reply.header('connection', 'close')
            request.raw.resume()
          }
          return sendOssError(reply, err, requestId, t?.bucket)
        }
        throw err
      }
    }
  })

  await app.listen({ port, host })
  const address = app.server.address() as AddressInfo
  const originHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : (host.includes(':') ? `[${host}]` : host)
  origin = `http://${originHost}:${address.port}`
  const keyOrigin = options.publicOrigin?.replace(/\/$/, '') ?? origin
  publicKeyUrl = `${keyOrigin}${keyPath}`
  ownHosts.add(new URL(keyOrigin).hostname)
  return {
    origin,
    publicKeyUrl,
    credentials,
    port: address.port,
    close: async () => { await app.close() }
  }
}
