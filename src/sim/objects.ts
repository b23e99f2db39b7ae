import { crc64 } from '../protocol/crc64.js'
import { callbackOf, describeCallback, runCallback, sendCallbackOutcome } from './callbacks.js'
import { checkBucketAndKey, md5, metaHeaders, objectHeaders, readBody, type SimContext, type SimRequest } from './context.js'
import { OSS_ERRORS } from './oss-error.js'
import { factsOf, type StoredObject } from './store.js'

/** PutObject, with an optional callback. */
export async function putObject (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { bucket, key } = checkBucketAndKey(r.target)
  const callback = callbackOf(r.target, r.headers, ctx.strict)
  const data = await readBody(r.request.raw, ctx.maxObjectBytes)
  const digest = md5(data)
  if (r.headers['content-md5'] !== undefined && r.headers['content-md5'] !== digest.toString('base64')) throw OSS_ERRORS.invalidDigest()
  const object: StoredObject = {
    bucket,
    key,
    data,
    contentType: r.headers['content-type'] ?? 'application/octet-stream',
    etag: digest.toString('hex').toUpperCase(),
    crc64: crc64(data).toString(),
    contentMd5: digest.toString('base64'),
    lastModified: ctx.now(),
    meta: metaHeaders(r.headers),
    objectType: 'Normal'
  }
  await ctx.store.put(object)
  const result = callback === undefined ? undefined : await runCallback(ctx, callback, factsOf(object), 'PutObject', r.requestId, r.request.ip, {})
  ctx.log(`PUT ${bucket}/${key} ${data.length} B${describeCallback(result)}`)
  if (result !== undefined) return sendCallbackOutcome(r.reply, result, objectHeaders(object), r.requestId, bucket)
  return r.reply.code(200).headers(objectHeaders(object)).send()
}

const RESPONSE_OVERRIDES: ReadonlySet<string> = new Set([
  'response-content-type', 'response-content-language', 'response-expires', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding'
])

async function objectOf (ctx: SimContext, r: SimRequest): Promise<StoredObject> {
  const { bucket, key } = checkBucketAndKey(r.target)
  const object = await ctx.store.get(bucket, key)
  if (object === undefined) throw OSS_ERRORS.noSuchKey(key)
  r.reply.headers({
    ...objectHeaders(object),
    ...object.meta,
    'content-type': object.contentType,
    'last-modified': object.lastModified.toUTCString(),
    'x-oss-object-type': object.objectType,
    'x-oss-storage-class': 'Standard',
    'accept-ranges': 'bytes'
  })
  // GetObject's response-* parameters override the stored headers in this answer only.
  for (const [name, value] of r.target.query) {
    if (RESPONSE_OVERRIDES.has(name)) r.reply.header(name.slice('response-'.length), value)
  }
  return object
}

/** HeadObject: the object's headers, no body. */
export async function headObject (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const object = await objectOf(ctx, r)
  r.reply.header('content-length', String(object.data.length))
  return r.reply.code(200).send()
}

/** GetObject, with one optional byte range. */
export async function getObject (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const object = await objectOf(ctx, r)
  // One range, `bytes=a-b`, `bytes=a-` or `bytes=-n`; OSS ignores a Range it cannot read and sends the whole object.
  const range = /^bytes=(\d*)-(\d*)$/.exec(r.request.headers.range ?? '')
  if (range !== null && (range[1] !== '' || range[2] !== '')) {
    const size = object.data.length
    const start = range[1] === '' ? Math.max(0, size - Number(range[2])) : Number(range[1])
    const end = range[1] === '' || range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1)
    if (start >= size) throw OSS_ERRORS.invalidRange()
    if (start <= end) {
      r.reply.header('content-range', `bytes ${start}-${end}/${size}`)
      return r.reply.code(206).send(object.data.subarray(start, end + 1))
    }
  }
  return r.reply.code(200).send(object.data)
}

/** DeleteObject: 204 whether or not the object existed, as OSS. */
export async function deleteObject (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { bucket, key } = checkBucketAndKey(r.target)
  await ctx.store.delete(bucket, key)
  return r.reply.code(204).send()
}
