import { createRequire } from 'node:module'
import type { Redis, RedisOptions } from 'ioredis'
import { invalidOption } from '../errors.js'
import type { TicketConsumeResult, TicketStore, UploadTicket } from './store.js'
import { wholeNumberOption } from '../options.js'

/** Options of {@link createRedisTicketStore}. */
export interface RedisTicketStoreOptions {
  /** A `redis://` or `rediss://` URL. Ignored when `client` is given. */
  url?: string
  /**
   * An ioredis client to use (and not close). Give it `enableOfflineQueue: false` and a `commandTimeout`,
   * as the store's own client has: a queued command can run long after its caller gave up.
   */
  client?: Redis
  /** Prefix of every key. Default `oss-callback:ticket:`. */
  keyPrefix?: string
  /** Timeout of one Redis command, in ms. Default 2000 (a callback has 5 s in all). */
  commandTimeoutMs?: number
  /** How often `isReady` is checked with a `PING`, in ms. Default 1000. */
  healthCheckIntervalMs?: number
  /** A `PING` not answered within this many ms makes the store not ready until one is. Default 1000. */
  healthCheckTimeoutMs?: number
}

// GET, then overwrite with the marker keeping the TTL, in one script: Redis runs it
// atomically, so of N receivers consuming one ticket at once exactly one gets it.
// A script sent to a stalled Redis runs when Redis resumes, long after the callback was
// answered 503: past ARGV[2] (epoch ms, by Redis's clock) it leaves the ticket alone.
const CONSUME_SCRIPT = `
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) >= tonumber(ARGV[2]) then
  return redis.error_reply('LATE ticket consume arrived after its deadline')
end
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
 *
 * Nothing is queued while the connection is down: a command either goes out at once
 * or fails. The consume script carries its deadline and does nothing once Redis's clock
 * is past it, so the receiver's and Redis's clocks must agree to well under a second.
 */
export function createRedisTicketStore (options: RedisTicketStoreOptions): TicketStore & { readonly client: Redis } {
  const keyPrefix = options.keyPrefix ?? 'oss-callback:ticket:'
  const commandTimeout = wholeNumberOption('commandTimeoutMs', options.commandTimeoutMs, 2000)
  const healthInterval = wholeNumberOption('healthCheckIntervalMs', options.healthCheckIntervalMs, 1000)
  const healthTimeout = wholeNumberOption('healthCheckTimeoutMs', options.healthCheckTimeoutMs, 1000)
  // The script must have run this long before its caller stops waiting, so that its reply
  // is read in time: a ticket consumed by a script whose reply came too late would be lost.
  const replyMargin = Math.min(250, Math.floor(commandTimeout / 4))
  let client: Redis
  const owned = options.client === undefined
  if (options.client !== undefined) {
    client = options.client
  } else {
    if (options.url === undefined || !/^rediss?:\/\//.test(options.url)) throw invalidOption('Redis URL must start with redis:// or rediss://')
    const redisOptions: RedisOptions = {
      commandTimeout,
      // A callback cannot wait for a reconnect: a command fails at once while the connection is
      // down, commands in flight fail when it drops, and none is sent again after a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: commandTimeout
    }
    // Loaded on first use: importing the tickets (with the memory store) does not load ioredis.
    const { Redis: RedisClient } = createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }
    client = new RedisClient(options.url, redisOptions)
    // ioredis reconnects by itself; an unhandled 'error' event would crash the process.
    client.on('error', () => {})
  }

  // A stalled Redis (a frozen process, a black-holed network) keeps the connection 'ready':
  // only a PING that goes unanswered shows it.
  let healthy = true
  let pinging = false
  function check (): void {
    if (pinging) return
    pinging = true
    const sentAt = Date.now()
    const timer = setTimeout(() => { healthy = false }, healthTimeout)
    client.ping().then(() => {
      if (Date.now() - sentAt < healthTimeout) healthy = true
    }, () => { healthy = false }).finally(() => {
      clearTimeout(timer)
      pinging = false
    })
  }
  const interval = setInterval(check, healthInterval)
  interval.unref()
  client.on('ready', check)

  // At start, wait for the first connection within the budget rather than fail at once (a command
  // not yet sent cannot run late); once it has been up, a connection that is down fails at once.
  let everReady = client.status === 'ready'
  client.once('ready', () => { everReady = true })
  async function connected (budgetMs: number): Promise<void> {
    if (client.status === 'ready') return
    if (everReady || budgetMs <= 0 || client.status === 'end') throw new Error('Redis connection is not ready')
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('ready', onReady)
        reject(new Error('Redis connection is not ready'))
      }, budgetMs)
      function onReady (): void {
        clearTimeout(timer)
        resolve()
      }
      client.once('ready', onReady)
    })
  }

  return {
    client,
    async save (ticket, retainMs) {
      await connected(commandTimeout)
      const ok = await client.set(keyPrefix + ticket.id, JSON.stringify(ticket), 'PX', Math.max(1, Math.ceil(retainMs)), 'NX')
      if (ok !== 'OK') throw new Error('ticket id already exists')
    },
    async consume (id, consumeOptions = {}): Promise<TicketConsumeResult> {
      const giveUpAt = Math.min(consumeOptions.deadlineAt ?? Infinity, Date.now() + commandTimeout) - replyMargin
      await connected(giveUpAt - Date.now())
      const reply = await client.eval(CONSUME_SCRIPT, 1, keyPrefix + id, USED, String(Math.floor(giveUpAt))) as string | null
      if (reply === null) return { status: 'unknown' }
      if (reply === USED) return { status: 'used' }
      return { status: 'consumed', ticket: parseTicket(reply) }
    },
    isReady () {
      return client.status === 'ready' && healthy
    },
    async close () {
      clearInterval(interval)
      client.off('ready', check)
      if (owned) await client.quit().catch(() => { client.disconnect() })
    }
  }
}
