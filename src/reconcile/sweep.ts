/**
 * The sweep: list the objects under each prefix (ListObjectsV2, one page at a time, never the
 * whole listing in memory), keep those modified in the window, match each page against the event
 * log in one query, and record an `oss.object.unconfirmed` event for each object the log has no
 * event for. It only ever appends: the delivery worker delivers what it records.
 */
import { invalidOption } from '../errors.js'
import type { EventStore, ObjectEventRef } from '../events/store.js'
import { normalizeEtag, UNCONFIRMED_EVENT_TYPE, unconfirmedEnvelope, unconfirmedEventId } from './envelope.js'
import { headObject, type BucketReader } from './oss.js'

/** Default of `--settle` and `OSS_CALLBACK_RECONCILE_SETTLE`: a callback may still be on its way. */
export const DEFAULT_SETTLE_MS = 2 * 60_000

/** An object the sweep found no event for. */
export interface UnconfirmedObject {
  key: string
  /** Upper case, no quotes. */
  etag: string
  size: number
  lastModified: string
  /** The recorded event's id (also in a dry run: the id it would have). */
  eventId: string
}

/** Counts of one sweep. */
export interface SweepReport {
  /** Objects listed under the prefixes. */
  listed: number
  /** Objects in the window the log has an event for (any state, rejected included). */
  matched: number
  /** Objects recorded as `oss.object.unconfirmed` by this sweep (in a dry run: that would be). */
  new: number
  /** Objects left alone: modified before `since`, younger than the settle time, or changed or deleted during the sweep. */
  skipped: number
  /** Callback events in the window whose body names no bucket or object: they cannot be matched. */
  unmatchable: number
  dryRun: boolean
}

/** Options of {@link sweep}. */
export interface SweepOptions {
  store: EventStore
  reader: BucketReader
  bucket: string
  prefixes: readonly string[]
  /** Objects modified at or after this time, ms since the epoch. */
  since: number
  /** Objects younger than this are left alone, ms. Default: {@link DEFAULT_SETTLE_MS}. */
  settleMs?: number
  /** The log's retention, ms: a `since` further back is refused (the log no longer knows those callbacks). */
  retentionMs?: number
  /** Record nothing; report what would be recorded through `onUnconfirmed`. */
  dryRun?: boolean
  /** Keys per listing page, 1 to 1000. Default: 1000. */
  pageSize?: number
  /** HeadObject requests at once. Default: 8. */
  headConcurrency?: number
  /** One OSS request, ms. Default: the client's. */
  requestTimeoutMs?: number
  /** Default: `Date.now`. */
  now?: () => number
  /** Stops between pages; the sweep then rejects with the signal's reason. */
  signal?: AbortSignal
  /** After each page, with the counts so far. */
  onPage?: (report: Readonly<SweepReport>) => void
  /** For each object recorded (or, in a dry run, that would be). */
  onUnconfirmed?: (object: UnconfirmedObject) => void
}

/** Checks the window; throws `OSS_CB_ERR_INVALID_OPTION` with one line. */
export function checkWindow (since: number, now: number, retentionMs: number | undefined): void {
  if (!Number.isFinite(since)) throw invalidOption('since must be a time')
  if (since > now) throw invalidOption('since is in the future')
  if (retentionMs !== undefined && since < now - retentionMs) {
    throw invalidOption(`since reaches back ${formatSpan(now - since)}, further than the event log keeps callbacks (${formatSpan(retentionMs)}, OSS_CALLBACK_RETENTION): the log no longer knows those callbacks`)
  }
}

function formatSpan (ms: number): string {
  const hours = ms / 3_600_000
  return hours >= 48 ? `${Math.round(hours / 24 * 10) / 10}d` : hours >= 1 ? `${Math.round(hours * 10) / 10}h` : `${Math.round(ms / 60_000)}m`
}

async function eachLimited<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await fn(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run))
}

/** Whether the log knows this object version: an event without an ETag matches any version. */
function known (refs: readonly ObjectEventRef[] | undefined, etag: string): boolean {
  return refs !== undefined && refs.some((r) => r.etag === null || r.etag === '' || normalizeEtag(r.etag) === etag)
}

/** One sweep over the prefixes. Rejects on an OSS or store error (what was recorded stays recorded). */
export async function sweep (options: SweepOptions): Promise<SweepReport> {
  const { store, reader, bucket } = options
  const now = options.now ?? Date.now
  const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS
  const pageSize = options.pageSize ?? 1000
  const dryRun = options.dryRun === true
  if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > 1000) throw invalidOption('pageSize must be a whole number from 1 to 1000')
  if (options.prefixes.length === 0) throw invalidOption('give at least one prefix')
  const startedAt = now()
  checkWindow(options.since, startedAt, options.retentionMs)
  const settledBefore = startedAt - settleMs
  const timeout = options.requestTimeoutMs === undefined ? {} : { timeout: options.requestTimeoutMs }

  const report: SweepReport = { listed: 0, matched: 0, new: 0, skipped: 0, unmatchable: await store.countWithoutObject(options.since), dryRun }
  // Overlapping prefixes (`a/` and `a/b/`) would list an object twice.
  const prefixes = [...new Set(options.prefixes)].filter((p, _, all) => !all.some((q) => q !== p && p.startsWith(q)))
  for (const prefix of prefixes) {
    let token: string | undefined
    do {
      options.signal?.throwIfAborted()
      // A fresh options object per call: ali-oss writes the token into it, and an old one wins over a new one.
      const page = await reader.listV2({ prefix, 'max-keys': pageSize, ...(token === undefined ? {} : { 'continuation-token': token }) }, { ...timeout })
      const objects = page.objects ?? []
      report.listed += objects.length
      const candidates: Array<{ key: string, etag: string, size: number, lastModified: string }> = []
      for (const o of objects) {
        const modified = Date.parse(o.lastModified)
        if (Number.isNaN(modified) || modified < options.since || modified > settledBefore) report.skipped++
        else candidates.push({ key: o.name, etag: normalizeEtag(o.etag), size: Number(o.size), lastModified: new Date(modified).toISOString() })
      }
      const byKey = new Map<string, ObjectEventRef[]>()
      for (const ref of await store.findByObjects(bucket, candidates.map((c) => c.key))) {
        const list = byKey.get(ref.objectKey)
        if (list === undefined) byKey.set(ref.objectKey, [ref])
        else list.push(ref)
      }
      const unmatched = candidates.filter((c) => {
        if (!known(byKey.get(c.key), c.etag)) return true
        report.matched++
        return false
      })
      if (dryRun) {
        for (const c of unmatched) {
          report.new++
          options.onUnconfirmed?.({ ...c, eventId: unconfirmedEventId(bucket, c.key, c.etag) })
        }
      } else {
        await eachLimited(unmatched, options.headConcurrency ?? 8, async (c) => {
          const system = await headObject(reader, bucket, c.key, options.requestTimeoutMs)
          // Gone, or overwritten since the listing: the next sweep judges the version then current.
          if (system === null || system.etag !== c.etag) { report.skipped++; return }
          const id = unconfirmedEventId(bucket, c.key, c.etag)
          const { created } = await store.append({
            id,
            type: UNCONFIRMED_EVENT_TYPE,
            bucket,
            objectKey: c.key,
            etag: c.etag,
            envelope: JSON.stringify(unconfirmedEnvelope(system, now()))
          })
          if (!created) { report.matched++; return }
          report.new++
          options.onUnconfirmed?.({ key: c.key, etag: c.etag, size: system.size, lastModified: system.lastModified, eventId: id })
        })
      }
      options.onPage?.(report)
      token = page.isTruncated ? (page.nextContinuationToken ?? undefined) : undefined
    } while (token !== undefined)
  }
  return report
}
