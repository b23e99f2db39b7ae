import { randomBytes } from 'node:crypto'
import { crc64 } from '../protocol/crc64.js'
import { callbackOf, describeCallback, runCallback, sendCallbackOutcome } from './callbacks.js'
import {
  checkBucket, checkBucketAndKey, encodingOf, MAX_XML_BYTES, md5, metaHeaders, objectLocation, queryGet, queryInteger, quotedEtag,
  readBody, xmlTime, type SimContext, type SimRequest, type Upload
} from './context.js'
import { compareKeys } from './key-index.js'
import { OSS_ERRORS } from './oss-error.js'
import { factsOf, type StoredObject } from './store.js'
import { parseCompleteMultipartUpload, xmlDocument } from './xml.js'

const MIN_PART_BYTES = 100 * 1024
const MAX_PART_NUMBER = 10_000

function sendXml (r: SimRequest, root: string, content: Record<string, unknown>): unknown {
  return r.reply.code(200).type('application/xml').send(xmlDocument(root, content))
}

/** InitiateMultipartUpload. */
export async function initiateUpload (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { bucket, key } = checkBucketAndKey(r.target)
  const uploadId = randomBytes(16).toString('hex').toUpperCase()
  ctx.uploads.set(uploadId, {
    bucket, key, initiated: ctx.now(), contentType: r.headers['content-type'] ?? 'application/octet-stream', meta: metaHeaders(r.headers), parts: new Map()
  })
  ctx.log(`POST ${bucket}/${key}?uploads -> ${uploadId}`)
  return sendXml(r, 'InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: uploadId })
}

function uploadOf (ctx: SimContext, r: SimRequest): { bucket: string, key: string, uploadId: string, upload: Upload } {
  const { bucket, key } = checkBucketAndKey(r.target)
  const uploadId = queryGet(r.target, 'uploadId') ?? ''
  const upload = ctx.uploads.get(uploadId)
  if (upload === undefined || upload.bucket !== bucket || upload.key !== key) throw OSS_ERRORS.noSuchUpload(uploadId)
  return { bucket, key, uploadId, upload }
}

/** UploadPart. */
export async function uploadPart (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { upload } = uploadOf(ctx, r)
  const partText = queryGet(r.target, 'partNumber') ?? ''
  const partNumber = /^\d{1,5}$/.test(partText) ? Number(partText) : 0
  if (partNumber < 1 || partNumber > MAX_PART_NUMBER) throw OSS_ERRORS.invalidArgument('Part number must be an integer between 1 and 10000, inclusive.')
  const data = await readBody(r.request.raw, ctx.maxObjectBytes)
  const digest = md5(data)
  const contentMd5 = r.request.headers['content-md5']
  if (contentMd5 !== undefined && contentMd5 !== digest.toString('base64')) throw OSS_ERRORS.invalidDigest()
  const etag = digest.toString('hex').toUpperCase()
  const part = { data, etag, crc64: crc64(data).toString(), lastModified: ctx.now() }
  upload.parts.set(partNumber, part)
  return r.reply.code(200).headers({ etag: quotedEtag(etag), 'x-oss-hash-crc64ecma': part.crc64, 'content-md5': digest.toString('base64') }).send()
}

/** AbortMultipartUpload. */
export async function abortUpload (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { uploadId } = uploadOf(ctx, r)
  ctx.uploads.delete(uploadId)
  return r.reply.code(204).send()
}

/** CompleteMultipartUpload, with an optional callback. */
export async function completeUpload (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { bucket, key, uploadId, upload } = uploadOf(ctx, r)
  const callback = callbackOf(r.target, r.headers, ctx.strict)
  const body = await readBody(r.request.raw, MAX_XML_BYTES)
  let list: Array<{ partNumber: number, etag: string }>
  if ((r.headers['x-oss-complete-all'] ?? '').toLowerCase() === 'yes') {
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
    lastModified: ctx.now(),
    meta: upload.meta,
    objectType: 'Multipart'
  }
  await ctx.store.put(object)
  ctx.uploads.delete(uploadId)
  const result = callback === undefined ? undefined : await runCallback(ctx, callback, factsOf(object), 'CompleteMultipartUpload', r.requestId, r.request.ip, {})
  ctx.log(`POST ${bucket}/${key}?uploadId ${list.length} parts ${data.length} B${describeCallback(result)}`)
  const resultHeaders = { etag: quotedEtag(object.etag), 'x-oss-hash-crc64ecma': object.crc64 }
  if (result !== undefined) return sendCallbackOutcome(r.reply, result, resultHeaders, r.requestId, bucket)
  r.reply.headers(resultHeaders)
  return sendXml(r, 'CompleteMultipartUploadResult', {
    Location: objectLocation(bucket, key),
    Bucket: bucket,
    Key: key,
    ETag: quotedEtag(object.etag)
  })
}

/** ListParts: the parts uploaded so far, in part order, paged by part number. */
export async function listParts (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { bucket, key, uploadId, upload } = uploadOf(ctx, r)
  const encode = encodingOf(r.target)
  const maxParts = queryInteger(r.target, 'max-parts', 1, 1000, 1000)
  const marker = queryInteger(r.target, 'part-number-marker', 0, MAX_PART_NUMBER, 0)
  const numbers = [...upload.parts.keys()].filter((n) => n > marker).sort((a, b) => a - b)
  const page = numbers.slice(0, maxParts)
  const truncated = numbers.length > page.length
  return sendXml(r, 'ListPartsResult', {
    Bucket: bucket,
    ...(encode.url ? { EncodingType: 'url' } : {}),
    Key: encode(key),
    UploadId: uploadId,
    PartNumberMarker: marker,
    NextPartNumberMarker: page.at(-1) ?? marker,
    MaxParts: maxParts,
    IsTruncated: truncated,
    ...(page.length === 0
      ? {}
      : {
          Part: page.map((n) => {
            const p = upload.parts.get(n) as NonNullable<ReturnType<typeof upload.parts.get>>
            return { PartNumber: n, LastModified: xmlTime(p.lastModified), ETag: quotedEtag(p.etag), HashCrc64ecma: p.crc64, Size: p.data.length }
          })
        })
  })
}

/** ListMultipartUploads: uploads in progress by key (byte order), then by start time. */
export async function listUploads (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const bucket = checkBucket(r.target)
  const t = r.target
  const encode = encodingOf(t)
  const prefix = queryGet(t, 'prefix') ?? ''
  const delimiter = queryGet(t, 'delimiter') ?? ''
  const keyMarker = queryGet(t, 'key-marker') ?? ''
  const uploadIdMarker = queryGet(t, 'upload-id-marker') ?? ''
  const maxUploads = queryInteger(t, 'max-uploads', 1, 1000, 1000)
  const all = [...ctx.uploads.entries()]
    .filter(([, u]) => u.bucket === bucket && u.key.startsWith(prefix))
    .sort(([ia, a], [ib, b]) => compareKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime() || (ia < ib ? -1 : ia > ib ? 1 : 0))
  // After key-marker; with upload-id-marker, also the key-marker's own uploads that come after that id.
  let start = 0
  if (keyMarker !== '') {
    const markerAt = uploadIdMarker === '' ? -1 : all.findIndex(([id, u]) => u.key === keyMarker && id === uploadIdMarker)
    start = markerAt >= 0 ? markerAt + 1 : all.findIndex(([, u]) => compareKeys(u.key, keyMarker) > 0)
    if (start < 0) start = all.length
  }
  const uploads: Array<[string, Upload]> = []
  const prefixes: string[] = []
  let lastKey = ''
  let lastId = ''
  let i = start
  while (i < all.length && uploads.length + prefixes.length < maxUploads) {
    const [id, u] = all[i] as [string, Upload]
    const d = delimiter === '' ? -1 : u.key.indexOf(delimiter, prefix.length)
    if (d >= 0) {
      const common = u.key.slice(0, d + delimiter.length)
      prefixes.push(common)
      lastKey = common
      lastId = ''
      while (i < all.length && (all[i] as [string, Upload])[1].key.startsWith(common)) i++
      continue
    }
    uploads.push([id, u])
    lastKey = u.key
    lastId = id
    i++
  }
  const truncated = i < all.length
  return sendXml(r, 'ListMultipartUploadsResult', {
    Bucket: bucket,
    ...(encode.url ? { EncodingType: 'url' } : {}),
    KeyMarker: encode(keyMarker),
    UploadIdMarker: uploadIdMarker,
    NextKeyMarker: truncated ? encode(lastKey) : '',
    NextUploadIdMarker: truncated ? lastId : '',
    Delimiter: encode(delimiter),
    Prefix: encode(prefix),
    MaxUploads: maxUploads,
    IsTruncated: truncated,
    ...(uploads.length === 0 ? {} : { Upload: uploads.map(([id, u]) => ({ Key: encode(u.key), UploadId: id, Initiated: xmlTime(u.initiated) })) }),
    ...(prefixes.length === 0 ? {} : { CommonPrefixes: prefixes.map((p) => ({ Prefix: encode(p) })) })
  })
}
