import { Redis, type RedisOptions } from 'ioredis'
import { invalidOption } from '../errors.js'
import type { TicketConsumeResult, TicketStore, UploadTicket } from './store.js'

/** Options of {@link createRedisTicketStore}. */
export interface RedisTicketStoreOptions {
  /** A `redis://` or `rediss://` URL. Ignored when `client` is given. */
  url?: string
  /** An ioredis client to use (and not close). */
  client?: Redis
  /** Prefix of every key. Default `oss-callback:ticket:`. */
  keyPrefix?: string
  /** Timeout of one Redis command, in ms. Default 2000 (a callback has 5 s in all). */
  commandTimeoutMs?: number
}

// GET, then overwrite with the marker keeping the TTL, in one script: Redis runs it
// atomically, so of N receivers consuming one ticket at once exactly one gets it.
const CONSUME_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
if v == ARGV[1] then return ARGV[1] end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return v`

const USED = 'used'

function parseTicket (text: string): UploadTicket {
  const value = JSON.parse(text) as unknown
  if (value === null || typeof value !== 'object' || typeof (value as UploadTicket).id !== 'string') throw new Error('stored ticket is not a ticket')
  return value as UploadTicket
}

/**
 * A ticket store in Redis, shared by every receiver instance behind a load balancer.
 * A ticket is one key holding its JSON; consuming replaces it with a `used` marker
 * (same TTL) in one Lua script, so a replay is told apart from an unknown ticket
 * until the ticket would have been forgotten anyway. Needs Redis 6 or later (KEEPTTL).
 */
export function createRedisTicketStore (options: RedisTicketStoreOptions): TicketStore & { readonly client: Redis } {
  const keyPrefix = options.keyPrefix ?? 'oss-callback:ticket:'
  const commandTimeout = options.commandTimeoutMs ?? 2000
  if (!Number.isSafeInteger(commandTimeout) || commandTimeout <= 0) throw invalidOption(`commandTimeoutMs must be a positive whole number, got ${String(commandTimeout)}`)
  let client: Redis
  const owned = options.client === undefined
  if (options.client !== undefined) {
    client = options.client
  } else {
    if (options.url === undefined || !/^rediss?:\/\//.test(options.url)) throw invalidOption('Redis URL must start with redis:// or rediss://')
    const redisOptions: RedisOptions = {
      commandTimeout,
      // A callback cannot wait for a reconnect: fail fast, the plugin answers a coded 503.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
      connectTimeout: commandTimeout
    }
    client = new Redis(options.url, redisOptions)
    // ioredis reconnects by itself; an unhandled 'error' event would crash the process.
    client.on('error', () => {})
  }

  return {
    client,
    async save (ticket, retainMs) {
      const ok = await client.set(keyPrefix + ticket.id, JSON.stringify(ticket), 'PX', Math.max(1, Math.ceil(retainMs)), 'NX')
      if (ok !== 'OK') throw new Error('ticket id already exists')
    },
    async consume (id): Promise<TicketConsumeResult> {
      const reply = await client.eval(CONSUME_SCRIPT, 1, keyPrefix + id, USED) as string | null
      if (reply === null) return { status: 'unknown' }
      if (reply === USED) return { status: 'used' }
      return { status: 'consumed', ticket: parseTicket(reply) }
    },
    isReady () {
      return client.status === 'ready'
    },
    async close () {
      if (owned) await client.quit().catch(() => { client.disconnect() })
    }
  }
}
