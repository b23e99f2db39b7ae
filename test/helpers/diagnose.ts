import type { FastifyRequest } from 'fastify'
import type { RefusedRequest } from '../../src/diagnose/explain.js'

/** The request as the plugin's refusal path sees it, for diagnostics wired through `onFailure`. */
export function refusedRequestOf (request: FastifyRequest): RefusedRequest {
  return {
    method: request.method,
    url: request.url,
    headers: request.headers,
    rawHeaders: request.raw.rawHeaders,
    body: Buffer.isBuffer(request.body) ? request.body : undefined,
    httpVersion: request.raw.httpVersion
  }
}
