import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import { createHash, timingSafeEqual } from 'node:crypto'
import { invalidOption, isOssCallbackError, ossError } from '../errors.js'
import { LINGER_DEFAULTS, lingerAfterReply, type LingerOptions } from '../receiver/lingering-close.js'
import { sendError, toOssError } from '../receiver/plugin.js'
import { parseTicketRequest, type TicketGrant, type UploadTickets } from './issuer.js'

/**
 * Decides who may get a ticket: `false` refuses (403), `true` grants one with no
 * subject, a {@link TicketGrant} grants one for that subject. May throw a coded
 * error (such as `OSS_CB_ERR_TICKET_AUTH_REQUIRED`) to answer with it.
 */
export type TicketAuthorizer = (request: FastifyRequest) => boolean | TicketGrant | Promise<boolean | TicketGrant>

/** Options of the ticket route plugin ({@link ticketRoutes}, `ossTickets` in `oss-callback/tickets`). */
export interface TicketRoutesOptions {
  /** The issuer, made with `createUploadTickets`; give its `bindCallback` to the receiver plugin's `preHandler`. */
  tickets: UploadTickets
  /** The app's own check of who may get a ticket (a session, an API key). Required. */
  authorize: TicketAuthorizer
  /** Path of the ticket endpoint. Default `/oss/upload-tickets`. */
  path?: string
  /**
   * @internal Bounds of the lingering close after a refusal that leaves the body unread (413).
   * Default {@link LINGER_DEFAULTS}; tests use short ones.
   */
  lingeringClose?: Partial<LingerOptions>
}

/** Ticket requests are small JSON objects. */
const TICKET_BODY_LIMIT_BYTES = 16 * 1024

/**
 * The ticket endpoint, `POST <path>` with an optional JSON body, answering refusals with coded JSON
 * errors. Its JSON parser and error handler stay in its own scope. Closes the tickets' store on close
 * when the tickets made it (the default memory store).
 *
 * ```ts
 * const tickets = createUploadTickets({ accessKeyId, accessKeySecret, bucket, endpoint, region, callbackUrl })
 * await app.register(ossTickets, { tickets, authorize: (request) => ({ subject: request.user.id }) })
 * await app.register(ossCallback, { preHandler: tickets.bindCallback, handler })
 * ```
 */
export async function ticketRoutes (fastify: FastifyInstance, options: TicketRoutesOptions): Promise<void> {
  const { tickets, authorize } = options
  const path = options.path ?? '/oss/upload-tickets'
  if (tickets === null || typeof tickets !== 'object' || typeof tickets.issue !== 'function') {
    throw invalidOption('tickets is required: the issuer made with createUploadTickets')
  }
  if (typeof authorize !== 'function') throw invalidOption('authorize is required: it decides who may get a ticket')
  if (typeof path !== 'string' || !path.startsWith('/') || fastify.hasRoute({ method: 'POST', url: path })) {
    throw invalidOption('the tickets path must start with / and differ from every other POST route (the callback path)')
  }
  const linger: LingerOptions = { ...LINGER_DEFAULTS, ...options.lingeringClose }
  fastify.addHook('onClose', async () => { await tickets.close() })

  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const err = toOssError(error)
    // Fastify marks a refusal that left the body unread (413) to close the connection.
    if (reply.getHeader('connection') === 'close') lingerAfterReply(request.raw.socket, linger, request.raw)
    if (err.statusCode >= 500) request.log.error({ code: err.code, reason: err.reason, err: err.cause ?? error }, 'ticket request failed')
    else request.log.warn({ code: err.code, reason: err.reason }, 'ticket request refused')
    return sendError(reply, err)
  })

  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: TICKET_BODY_LIMIT_BYTES }, (_request, body, done) => {
    const text = (body as string).trim()
    if (text === '') { done(null, undefined); return }
    try {
      done(null, JSON.parse(text))
    } catch {
      done(ossError('TICKET_REQUEST_INVALID', 'ticket request is not JSON'), undefined)
    }
  })
  fastify.addContentTypeParser('*', (_request, _payload, done) => {
    done(ossError('TICKET_REQUEST_INVALID', 'ticket request is not JSON'), undefined)
  })

  fastify.route({
    method: ['GET', 'PUT', 'DELETE', 'PATCH'],
    url: path,
    handler: async (_request, reply) => { reply.header('allow', 'POST'); throw ossError('METHOD_NOT_ALLOWED', 'ticket path takes POST only') }
  })

  fastify.post(path, async (request, reply) => {
    let verdict: boolean | TicketGrant
    try {
      verdict = await authorize(request)
    } catch (err) {
      if (!isOssCallbackError(err)) throw ossError('INTERNAL', 'authorize hook threw', err)
      if (err.code === 'OSS_CB_ERR_TICKET_AUTH_REQUIRED') reply.header('www-authenticate', 'Bearer')
      throw err
    }
    if (verdict === false) throw ossError('TICKET_DENIED', 'authorize hook refused')
    if (verdict !== true && (verdict === null || typeof verdict !== 'object')) throw ossError('INTERNAL', 'authorize hook returned neither a boolean nor a grant')
    const grant = verdict === true ? {} : verdict
    const issued = await tickets.issue(parseTicketRequest(request.body), grant)
    // A signed form is a credential for one upload: keep it out of caches.
    return reply.code(200).header('cache-control', 'no-store').send(issued)
  })
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

/** Shortest bearer token accepted: a guessable token would hand out upload rights. */
export const MIN_TICKET_TOKEN_CHARS = 16

/**
 * The standalone server's authorization: `Authorization: Bearer <token>`, compared
 * in constant time. The caller is the app backend, trusted to name the subject in
 * the body's `subject` field (the browser's user it asks for).
 */
export function bearerAuthorizer (token: string): TicketAuthorizer {
  if (typeof token !== 'string' || token.length < MIN_TICKET_TOKEN_CHARS || /\s/.test(token)) {
    throw invalidOption(`the ticket token must be at least ${MIN_TICKET_TOKEN_CHARS} characters without white space`)
  }
  const expected = digest(token)
  return (request) => {
    const header = request.headers.authorization
    const match = typeof header === 'string' ? /^Bearer +(\S+)\s*$/i.exec(header) : null
    if (match === null || !timingSafeEqual(digest(match[1] as string), expected)) {
      throw ossError('TICKET_AUTH_REQUIRED', 'missing or wrong bearer token')
    }
    const body = request.body as Record<string, unknown> | undefined
    const subject = body !== null && typeof body === 'object' ? body.subject : undefined
    if (subject === undefined || subject === null) return true
    if (typeof subject !== 'string') throw ossError('TICKET_REQUEST_INVALID', 'subject is not a string')
    return { subject }
  }
}
