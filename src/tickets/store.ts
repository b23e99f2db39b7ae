import { wholeNumberOption } from '../options.js'

/** One upload ticket: what one PostObject upload may be, and who asked for it. */
export interface UploadTicket {
  /** The one-time id, carried by the upload as `x:ticket` and by its callback. */
  id: string
  bucket: string
  /** The exact object key the policy pins. */
  key: string
  /** Smallest object the policy accepts, in bytes. */
  minSizeBytes: number
  /** Largest object the policy accepts, in bytes. */
  maxSizeBytes: number
  /** The content types the policy allows; absent when any is allowed. */
  contentTypes?: string[]
  /** Who asked: the subject the app's authorization named (a user id, for instance). */
  subject?: string
  /** When the ticket was issued, UTC ISO-8601. */
  issuedAt: string
  /** When the policy stops accepting the upload, UTC ISO-8601. */
  expiresAt: string
}

/** The outcome of {@link TicketStore.consume}. */
export type TicketConsumeResult =
  | { status: 'consumed', ticket: UploadTicket }
  | { status: 'used' }
  | { status: 'unknown' }

/** Options of one {@link TicketStore.consume} call. */
export interface TicketConsumeOptions {
  /**
   * The callback's deadline, epoch ms (wall clock). A consume that would take effect after it must not:
   * the callback has been answered with an error by then, and its ticket must stay usable for the re-upload.
   */
  deadlineAt?: number
}

/**
 * Where tickets live between issue and callback. `consume` must be atomic: of any
 * number of concurrent calls for one id, across every process sharing the store,
 * exactly one sees `consumed`.
 */
export interface TicketStore {
  /** Saves a new ticket, kept (then remembered as used) for `retainMs` milliseconds. */
  save (ticket: UploadTicket, retainMs: number): Promise<void>
  /**
   * Marks the ticket used and returns it, the first time only; later calls see `used`. A store whose
   * command can run later than sent (Redis) must leave the ticket unused once `deadlineAt` has passed.
   */
  consume (id: string, options?: TicketConsumeOptions): Promise<TicketConsumeResult>
  /** False while the store cannot answer (a Redis connection down or stalled). Default: always ready. */
  isReady? (): boolean
  /** Releases connections and timers. */
  close (): Promise<void>
}

/** Options of {@link createMemoryTicketStore}. */
export interface MemoryTicketStoreOptions {
  /** Most tickets held at once (issued, not yet forgotten); a save beyond it fails. Default 100000. */
  maxTickets?: number
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number
}

interface MemoryEntry {
  ticket: UploadTicket | undefined
  forgetAtMs: number
}

/**
 * The in-memory store: one process only (several receivers behind a load balancer
 * need the Redis store). Consumption is a synchronous map update, so it is atomic
 * within the process.
 */
export function createMemoryTicketStore (options: MemoryTicketStoreOptions = {}): TicketStore {
  const maxTickets = wholeNumberOption('maxTickets', options.maxTickets, 100_000)
  const now = options.now ?? Date.now
  const entries = new Map<string, MemoryEntry>()

  // Entries are inserted in roughly the order they are forgotten: trimming the oldest
  // on every save keeps memory to the live tickets without a timer.
  function trim (all: boolean): void {
    const t = now()
    for (const [id, entry] of entries) {
      if (entry.forgetAtMs <= t) entries.delete(id)
      else if (!all) return
    }
  }

  function live (id: string): MemoryEntry | undefined {
    const entry = entries.get(id)
    if (entry !== undefined && entry.forgetAtMs <= now()) {
      entries.delete(id)
      return undefined
    }
    return entry
  }

  return {
    async save (ticket, retainMs) {
      trim(entries.size >= maxTickets)
      if (entries.size >= maxTickets) throw new Error('memory ticket store is full')
      if (live(ticket.id) !== undefined) throw new Error('ticket id already exists')
      entries.set(ticket.id, { ticket, forgetAtMs: now() + retainMs })
    },
    async consume (id) {
      const entry = live(id)
      if (entry === undefined) return { status: 'unknown' }
      const ticket = entry.ticket
      if (ticket === undefined) return { status: 'used' }
      entry.ticket = undefined
      return { status: 'consumed', ticket }
    },
    async close () {
      entries.clear()
    }
  }
}
