import { V1_SIGNED_SUBRESOURCES } from '../protocol/oss-signing.js'
import type { SimContext, SimRequest } from './context.js'
import { listObjects } from './listing.js'
import { abortUpload, completeUpload, initiateUpload, listParts, listUploads, uploadPart } from './multipart.js'
import { deleteObject, getObject, headObject, putObject } from './objects.js'
import { OSS_ERRORS } from './oss-error.js'

type Handler = (ctx: SimContext, r: SimRequest) => Promise<unknown>

/**
 * Query parameters that are arguments of an operation rather than a sub-resource naming one. Every other
 * sub-resource OSS documents (`acl`, `tagging`, `symlink`, `append`, `x-oss-process`, …) selects an operation
 * of its own, so a request carrying one is looked up with it and answers 501 unless the table below has it.
 */
const PARAMETERS: ReadonlySet<string> = new Set([
  'security-token', 'callback', 'callback-var', 'response-content-type', 'response-content-language', 'response-expires',
  'response-cache-control', 'response-content-disposition', 'response-content-encoding', 'continuation-token',
  'x-oss-traffic-limit', 'x-oss-request-payer'
])

/** OSS sub-resources: the signed ones, plus those of newer APIs that V1 does not sign. */
const SUBRESOURCES: ReadonlySet<string> = new Set([
  ...[...V1_SIGNED_SUBRESOURCES].filter((name) => !PARAMETERS.has(name)),
  'accessPoint', 'accessPointPolicy', 'publicAccessBlock', 'bucketArchiveDirectRead', 'httpsConfig', 'dataRedundancyTransition',
  'objectInfo', 'replicationRule', 'resourcePool', 'policyStatus', 'overwriteConfig', 'x-oss-async-process', 'cleanRestoredObject',
  'userDefinedLogFieldsConfig'
])

/** Request headers that turn an operation into another one (PUT with a copy source is CopyObject). */
const OPERATION_HEADERS: readonly string[] = ['x-oss-copy-source']

/**
 * The implemented operations, by `<object|bucket> <METHOD>[ <sub-resources, sorted, &-joined>][ <header>]`.
 * Anything not listed answers 501 NotImplemented: a request never falls through to an operation that
 * merely shares its path.
 */
const OPERATIONS: Readonly<Record<string, Handler>> = {
  'object GET': getObject,
  'object HEAD': headObject,
  'object PUT': putObject,
  'object DELETE': deleteObject,
  'object POST uploads': initiateUpload,
  'object PUT partNumber&uploadId': uploadPart,
  'object PUT uploadId': uploadPart,
  'object POST uploadId': completeUpload,
  'object DELETE uploadId': abortUpload,
  'object GET uploadId': listParts,
  'bucket GET': listObjects,
  'bucket GET uploads': listUploads
}

/** The table key of a request: what operation it asks for. */
export function operationKey (r: Pick<SimRequest, 'target' | 'headers'>, method: string): string {
  const scope = r.target.key === undefined ? 'bucket' : 'object'
  const subs = [...new Set(r.target.query.map(([name]) => name).filter((name) => SUBRESOURCES.has(name)))].sort()
  const marks = OPERATION_HEADERS.filter((h) => r.headers[h] !== undefined)
  return [`${scope} ${method}`, ...(subs.length === 0 ? [] : [subs.join('&')]), ...marks].join(' ')
}

/** Runs the operation a signed request asks for, or throws 501 NotImplemented. */
export async function runOperation (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const handler = OPERATIONS[operationKey(r, r.request.method)]
  if (handler === undefined) throw OSS_ERRORS.notImplemented()
  return await handler(ctx, r)
}
