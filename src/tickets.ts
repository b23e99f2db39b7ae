import fp from 'fastify-plugin'
import { ticketRoutes } from './tickets/route.js'

export {
  createUploadTickets, parseTicketRequest, TICKET_CALLBACK_BODY, uploadUrlOf,
  type IssuedTicket, type TicketContext, type TicketGrant, type TicketRequest, type UploadTickets, type UploadTicketsOptions
} from './tickets/issuer.js'
export {
  createMemoryTicketStore, type MemoryTicketStoreOptions, type TicketConsumeOptions, type TicketConsumeResult, type TicketStore, type UploadTicket
} from './tickets/store.js'
export { createRedisTicketStore, type RedisTicketStoreOptions } from './tickets/redis-store.js'
export { bearerAuthorizer, type TicketAuthorizer, type TicketRoutesOptions } from './tickets/route.js'

/**
 * The ticket endpoint as a Fastify plugin of its own. `encapsulate: true` keeps its JSON parser and
 * error handler inside it. Callbacks are bound to tickets by the receiver plugin's `preHandler` hook:
 *
 * ```ts
 * const tickets = createUploadTickets({ accessKeyId, accessKeySecret, bucket, endpoint, region, callbackUrl })
 * await app.register(ossTickets, { tickets, authorize: (request) => ({ subject: request.user.id }) })
 * await app.register(ossCallback, { preHandler: tickets.bindCallback, handler: (cb, ctx: CallbackContext<TicketContext>) => ... })
 * ```
 */
export const ossTickets = fp(ticketRoutes, { name: 'oss-callback-tickets', fastify: '5.x', encapsulate: true })
