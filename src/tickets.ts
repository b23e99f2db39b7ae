export {
  createUploadTickets, parseTicketRequest, TICKET_CALLBACK_BODY, uploadUrlOf,
  type IssuedTicket, type TicketGrant, type TicketRequest, type UploadTickets, type UploadTicketsOptions
} from './tickets/issuer.js'
export { createMemoryTicketStore, type MemoryTicketStoreOptions, type TicketConsumeResult, type TicketStore, type UploadTicket } from './tickets/store.js'
export { createRedisTicketStore, type RedisTicketStoreOptions } from './tickets/redis-store.js'
export { bearerAuthorizer, type TicketAuthorizer } from './tickets/route.js'
