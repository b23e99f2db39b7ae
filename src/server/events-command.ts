import { parseArgs } from 'node:util'
import { parseDuration } from '../duration.js'
import { openEventStore } from '../events/open.js'
import { EVENT_STATES, type EventState, type EventStore, type EventSummary, type StoredEvent } from '../events/store.js'
import { DEFAULT_DATABASE_URL } from './config.js'

/** Where `oss-callback events` reads and writes. */
export interface EventsCommandIo {
  env: Readonly<Record<string, string | undefined>>
  stdout: { write: (chunk: string) => unknown }
  stderr: { write: (chunk: string) => unknown }
  /** Opens the store (tests). Default: `openEventStore` without creating one. */
  open?: (url: string) => Promise<EventStore>
  /** Default `Date.now`. */
  now?: () => number
}

export const EVENTS_USAGE = `Usage: oss-callback events <command> [options]

Reads and repairs the event log of forward mode (OSS_CALLBACK_DATABASE_URL, default
${DEFAULT_DATABASE_URL}). Works while the server runs; never creates a store.

Commands:
  list [--state <s>] [--since <time|duration>] [--object-prefix <p>] [--json]
                                 events, oldest first (--json: one JSON object a line)
  show <id>                      one event: its envelope and every attempt, as JSON
  redeliver <id>...              set events pending again, due now, with a fresh retry window
  redeliver --state dead|rejected [--since <time|duration>]
  purge --state <s> --before <time|duration>
                                 delete events in that state last changed before then
  stats                          counts by state and the oldest pending event

States: ${EVENT_STATES.join(', ')}. A time is ISO 8601 (2026-12-01T10:00:00Z); a duration
(<n>s|m|h|d, such as 2h) means that long ago.

Options:
  -h, --help    show this help
`

class UsageError extends Error {}

const SUBCOMMANDS = ['list', 'show', 'redeliver', 'purge', 'stats'] as const
type Subcommand = typeof SUBCOMMANDS[number]

function state (text: string | undefined, allowed: readonly string[] = EVENT_STATES): EventState | undefined {
  if (text === undefined) return undefined
  if (!allowed.includes(text)) throw new UsageError(`--state must be one of ${allowed.join(', ')}, got ${JSON.stringify(text)}`)
  return text as EventState
}

/** A time (ISO 8601) or a duration meaning that long ago; ms since the epoch. */
function pointInTime (name: string, text: string | undefined, now: number): number | undefined {
  if (text === undefined) return undefined
  if (/^\d+[smhd]$/.test(text.trim())) return now - parseDuration(text, name)
  const t = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN
  if (Number.isNaN(t)) throw new UsageError(`${name} must be an ISO 8601 time or a duration such as 2h, got ${JSON.stringify(text)}`)
  return t
}

const iso = (ms: number | null): string => ms === null ? '-' : new Date(ms).toISOString()

function summaryLine (e: EventSummary): string {
  return [e.id, e.state.padEnd(9), String(e.attempts).padStart(3), iso(e.createdAt), e.bucket ?? '-', e.objectKey ?? '-', e.lastError ?? ''].join('  ').trimEnd() + '\n'
}

function eventJson (e: StoredEvent): Record<string, unknown> {
  const { envelope, answer, ...rest } = e
  let parsed: unknown = envelope
  try { parsed = JSON.parse(envelope) } catch { /* kept as text */ }
  return { ...rest, answer: answer === null ? null : { status: answer.status, body: answer.body.toString('utf8') }, envelope: parsed }
}

/** `oss-callback events`: returns the exit code (0, or 1 for a usage error or an unusable store). */
export async function runEventsCommand (argv: readonly string[], io: EventsCommandIo): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || sub === '-h' || sub === '--help') {
    (sub === undefined ? io.stderr : io.stdout).write(EVENTS_USAGE)
    return sub === undefined ? 1 : 0
  }
  let values: { state?: string, since?: string, before?: string, 'object-prefix'?: string, json?: boolean, help?: boolean }
  let positionals: string[]
  try {
    if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown events command ${JSON.stringify(sub)}; see oss-callback events --help`)
    ;({ values, positionals } = parseArgs({
      args: [...rest],
      options: {
        state: { type: 'string' },
        since: { type: 'string' },
        before: { type: 'string' },
        'object-prefix': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      },
      allowPositionals: true,
      strict: true
    }))
  } catch (err) {
    io.stderr.write(`oss-callback events: ${(err as Error).message.split('\n')[0] ?? ''}\n`)
    return 1
  }
  if (values.help === true) {
    io.stdout.write(EVENTS_USAGE)
    return 0
  }
  const now = (io.now ?? Date.now)()
  let store: EventStore | undefined
  try {
    const command = sub as Subcommand
    const allowed: Record<Subcommand, string[]> = {
      list: ['state', 'since', 'object-prefix', 'json'],
      show: ['json'],
      redeliver: ['state', 'since'],
      purge: ['state', 'before'],
      stats: ['json']
    }
    const extra = Object.keys(values).find((k) => !allowed[command].includes(k))
    if (extra !== undefined) throw new UsageError(`events ${command} takes no --${extra}`)
    if ((command === 'list' || command === 'stats' || command === 'purge') && positionals.length > 0) throw new UsageError(`events ${command} takes no arguments, got ${JSON.stringify(positionals[0])}`)
    if (command === 'show' && positionals.length !== 1) throw new UsageError('events show takes one event id')
    if (command === 'redeliver' && (positionals.length > 0) === (values.state !== undefined)) throw new UsageError('events redeliver takes event ids, or --state dead|rejected, not both')
    if (command === 'purge' && (values.state === undefined || values.before === undefined)) throw new UsageError('events purge needs --state and --before')
    const listState = state(values.state, command === 'redeliver' ? ['dead', 'rejected'] : EVENT_STATES)
    const since = pointInTime('--since', values.since, now)
    const before = pointInTime('--before', values.before, now)

    const url = io.env.OSS_CALLBACK_DATABASE_URL === undefined || io.env.OSS_CALLBACK_DATABASE_URL === '' ? DEFAULT_DATABASE_URL : io.env.OSS_CALLBACK_DATABASE_URL
    if (url === 'none') throw new UsageError('OSS_CALLBACK_DATABASE_URL is none: there is no event log')
    store = await (io.open ?? ((u: string) => openEventStore(u, { create: false })))(url)

    switch (command) {
      case 'list': {
        let after: string | undefined
        do {
          const page = await store.list({ state: listState, since, objectPrefix: values['object-prefix'], limit: 500, after })
          for (const e of page.events) io.stdout.write(values.json === true ? `${JSON.stringify(e)}\n` : summaryLine(e))
          after = page.next ?? undefined
        } while (after !== undefined)
        return 0
      }
      case 'show': {
        const found = await store.show(positionals[0] as string)
        if (found === null) { io.stderr.write(`oss-callback events: no event ${JSON.stringify(positionals[0])}\n`); return 1 }
        io.stdout.write(`${JSON.stringify({ ...eventJson(found.event), attemptsMade: found.attempts }, null, 2)}\n`)
        return 0
      }
      case 'redeliver': {
        const n = listState !== undefined
          ? await store.redeliver({ state: listState as 'dead' | 'rejected', ...(since === undefined ? {} : { since }) })
          : await store.redeliver({ ids: positionals })
        io.stdout.write(`${n} event${n === 1 ? '' : 's'} set pending again\n`)
        return 0
      }
      case 'purge': {
        let total = 0
        for (;;) {
          const n = await store.purge(listState as EventState, before as number, 500)
          total += n
          if (n < 500) break
        }
        io.stdout.write(`${total} event${total === 1 ? '' : 's'} deleted\n`)
        return 0
      }
      default: {
        const stats = await store.stats()
        if (values.json === true) io.stdout.write(`${JSON.stringify(stats)}\n`)
        else {
          for (const s of EVENT_STATES) io.stdout.write(`${s.padEnd(10)} ${stats.counts[s]}\n`)
          io.stdout.write(`oldest pending: ${iso(stats.oldestPendingAt)}\n`)
        }
        return 0
      }
    }
  } catch (err) {
    const message = (err as Error).message.split('\n')[0] ?? ''
    const code = (err as { code?: unknown }).code
    io.stderr.write(`oss-callback events: ${message}${typeof code === 'string' && code.startsWith('OSS_CB_ERR_') ? ` (${code})` : ''}\n`)
    return 1
  } finally {
    await store?.close()
  }
}
