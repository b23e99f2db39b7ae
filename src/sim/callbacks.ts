import type { FastifyReply } from 'fastify'
import type { CallbackBodyValues } from '../protocol/body.js'
import { CALLBACK_PARAM_MESSAGES, decodeCallbackParam, type DecodedCallbackParam } from '../protocol/callback-param.js'
import type { Target } from './addressing.js'
import { dispatchCallback, type DispatchResult } from './callback-dispatch.js'
import { hostId, OWNER_ID, queryGet, queryHas, type SimContext } from './context.js'
import { OSS_ERRORS } from './oss-error.js'
import type { ObjectFacts } from './store.js'
import { errorXml } from './xml.js'

const CALLBACK_EC: Readonly<Record<string, string>> = {
  [CALLBACK_PARAM_MESSAGES.badUrl]: '0007-00000004',
  [CALLBACK_PARAM_MESSAGES.badPort]: '0007-00000004',
  [CALLBACK_PARAM_MESSAGES.privateIp]: '0007-00000008',
  [CALLBACK_PARAM_MESSAGES.emptyBody]: '0007-00000011',
  [CALLBACK_PARAM_MESSAGES.varTooLong]: '0007-00000101'
}

export function decodeCallback (callback: string | undefined, callbackVar: string | undefined, strict: boolean): DecodedCallbackParam | undefined {
  if (callback === undefined || callback === '') return undefined
  try {
    return decodeCallbackParam(callback, callbackVar, { strict })
  } catch (err) {
    const reason = (err as { reason?: string }).reason ?? CALLBACK_PARAM_MESSAGES.notJson
    throw OSS_ERRORS.invalidArgument(reason, CALLBACK_EC[reason])
  }
}

/** The callback parameters of a PutObject or CompleteMultipartUpload: header or query form, never both. */
export function callbackOf (t: Target, headers: Record<string, string>, strict: boolean): DecodedCallbackParam | undefined {
  const inHeader = headers['x-oss-callback'] !== undefined || headers['x-oss-callback-var'] !== undefined
  const inQuery = queryHas(t, 'callback') || queryHas(t, 'callback-var')
  if (inHeader && inQuery) throw OSS_ERRORS.invalidArgument('The callback is given both in the header and in the query.')
  return inHeader
    ? decodeCallback(headers['x-oss-callback'], headers['x-oss-callback-var'], strict)
    : decodeCallback(queryGet(t, 'callback'), queryGet(t, 'callback-var'), strict)
}

export async function runCallback (ctx: SimContext, param: DecodedCallbackParam, object: ObjectFacts, operation: string, requestId: string, clientIp: string, vars: Record<string, string>): Promise<DispatchResult> {
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
    privateKey: ctx.privateKey,
    publicKeyUrl: ctx.publicKeyUrl,
    requestId,
    bucket: object.bucket,
    ownerId: OWNER_ID,
    timeoutMs: ctx.callbackTimeoutMs,
    strict: ctx.strict,
    now: ctx.now,
    ...(ctx.callbackTrustedCa === undefined ? {} : { trustedCa: ctx.callbackTrustedCa })
  })
}

/** Answers an upload that carried a callback: the reply relayed with 200, or 203 CallbackFailed. */
export function sendCallbackOutcome (reply: FastifyReply, result: DispatchResult, headers: Record<string, string>, requestId: string, bucket: string): FastifyReply {
  reply.headers(headers)
  if (result.ok) return reply.code(200).type('application/json').send(result.body)
  reply.header('x-oss-ec', '0007-00000203')
  return reply.code(203).type('application/xml').send(errorXml({
    code: 'CallbackFailed', message: result.message ?? '', requestId, hostId: hostId(bucket), ec: '0007-00000203'
  }))
}

export function describeCallback (result: DispatchResult | undefined): string {
  if (result === undefined) return ''
  const last = result.attempts.at(-1)
  return result.ok ? ` callback ${last?.url ?? ''} -> 200` : ` callback failed: ${result.message ?? ''}`
}
