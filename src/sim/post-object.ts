import { crc64 } from '../protocol/crc64.js'
import { decodeCallback, describeCallback, runCallback, sendCallbackOutcome } from './callbacks.js'
import { checkBucket, checkKey, md5, objectHeaders, objectLocation, quotedEtag, type SimContext, type SimRequest } from './context.js'
import { OSS_ERRORS } from './oss-error.js'
import { checkPostPolicy, checkPostSignature } from './post-policy.js'
import { factsOf, type StoredObject } from './store.js'
import { xmlDocument } from './xml.js'

/** PostObject: a browser's form upload to the bucket, with an optional callback. */
export async function postObject (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const { request, reply, requestId } = r
  const bucket = checkBucket(r.target)
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
  const signature = checkPostSignature(fields, ctx.credentials)
  checkPostPolicy({ bucket, fields, size: file.data.length, now: ctx.now(), signature })
  const key = checkKey((fields.get('key') ?? '').replaceAll('${filename}', file.filename))
  const callback = decodeCallback(fields.get('callback'), fields.get('callback-var'), ctx.strict)
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
    lastModified: ctx.now(),
    meta,
    objectType: 'Normal'
  }
  await ctx.store.put(object)
  const result = callback === undefined ? undefined : await runCallback(ctx, callback, factsOf(object), 'PostObject', requestId, request.ip, vars)
  ctx.log(`POST ${bucket}/${key} (form) ${file.data.length} B${describeCallback(result)}`)
  if (result !== undefined) return sendCallbackOutcome(reply, result, objectHeaders(object), requestId, bucket)
  reply.headers(objectHeaders(object))
  const status = fields.get('success_action_status')
  if (status === '200') return reply.code(200).send()
  if (status === '201') {
    return reply.code(201).type('application/xml').send(xmlDocument('PostResponse', {
      Bucket: bucket,
      Location: objectLocation(bucket, key),
      Key: key,
      ETag: quotedEtag(object.etag)
    }))
  }
  return reply.code(204).send()
}
