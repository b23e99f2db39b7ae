import { parseArgs } from 'node:util'
import { parseDuration } from '../duration.js'
import { invalidOption } from '../errors.js'
import type { EventStore } from '../events/store.js'
import type { BucketAddress, BucketReader } from './oss.js'
import type { SweepReport, UnconfirmedObject } from './sweep.js'

export const RECONCILE_USAGE = `Usage: oss-callback reconcile --bucket <name> --prefix <p> [--prefix <p>]... --since <time|duration>
                             [--endpoint <url>] [--region <id>] [--settle <duration>] [--dry-run] [--json]

Lists the objects under each prefix modified since --since, and records an event of type
oss.object.unconfirmed in the event log for each one whose callback the log never saw (the
delivery worker of a running server delivers it to the app). A second run records nothing new.

Options:
  --bucket <name>        the bucket
  --prefix <p>           list under this prefix (repeatable; '' for the whole bucket)
  --since <t>            objects modified since this time: ISO 8601 (2026-01-31T00:00:00Z) or a
                         duration back from now (24h, 3d); at most the log's retention back
  --endpoint <url>       the OSS endpoint, such as https://oss-cn-hangzhou.aliyuncs.com
  --region <id>          the region, such as oss-cn-hangzhou (when no endpoint is given)
  --settle <d>           leave alone objects younger than this (default 2m)
  --dry-run              record nothing; list what would be recorded
  --json                 print the summary as JSON
  -h, --help             show this help

Environment:
  OSS_CALLBACK_DATABASE_URL   the event log (sqlite:<path> or postgres://...)
  OSS_CALLBACK_RETENTION      the log's retention (default 7d)
  OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SESSION_TOKEN (optional)
                              credentials allowed oss:ListObjects and oss:GetObject (docs/reconcile.md)

Exit status: 0 when the run completes, 1 on an error.
`

const DEFAULT_RETENTION = '7d'

/** Where `oss-callback reconcile` reads and writes, and what tests replace. */
export interface ReconcileCommandIo {
  env: Readonly<Record<string, string | undefined>>
  stdout: { write: (chunk: string) => unknown }
  stderr: { write: (chunk: string) => unknown, isTTY?: boolean }
  deps?: {
    now?: () => number
    /** Keys per listing page. Default: 1000. */
    pageSize?: number
    openStore?: (url: string) => Promise<EventStore>
    openBucket?: (address: BucketAddress) => BucketReader
    signal?: AbortSignal
  }
}

/** `--since`: an ISO 8601 time, or a duration back from now. */
export function parseSince (text: string, now: number): number {
  if (/^\d+[smhd]$/.test(text.trim())) return now - parseDuration(text, '--since')
  const t = /^\d{4}-\d\d-\d\d/.test(text) ? Date.parse(text) : Number.NaN
  if (Number.isNaN(t)) throw invalidOption(`--since must be an ISO 8601 time (such as 2026-01-31T00:00:00Z) or a duration (such as 24h), got ${JSON.stringify(text)}`)
  return t
}

function oneLine (err: unknown): string {
  const e = err as { message?: unknown, code?: unknown }
  // urllib (under ali-oss) appends its agent's socket counters to a network error: not for the user.
  const message = (String(e?.message ?? err).split('\n', 1)[0] ?? '').replace(/ -?\d+ \(connected: .*$/, '')
  return typeof e?.code === 'string' && e.code.startsWith('OSS_CB_ERR_') ? `${message} (${e.code})` : message
}

/** Runs `oss-callback reconcile`; resolves the exit code. */
export async function runReconcileCommand (argv: readonly string[], io: ReconcileCommandIo): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        bucket: { type: 'string' },
        prefix: { type: 'string', multiple: true },
        since: { type: 'string' },
        endpoint: { type: 'string' },
        region: { type: 'string' },
        settle: { type: 'string' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      },
      allowPositionals: false,
      strict: true
    }))
  } catch (err) {
    io.stderr.write(`oss-callback reconcile: ${oneLine(err)}; see oss-callback reconcile --help\n`)
    return 1
  }
  if (values.help === true) {
    io.stdout.write(RECONCILE_USAGE)
    return 0
  }
  const deps = io.deps ?? {}
  const now = deps.now ?? Date.now
  let store: EventStore | undefined
  let stopProgress = (): void => {}
  try {
    const bucket = values.bucket as string | undefined
    const prefixes = values.prefix as string[] | undefined
    if (bucket === undefined || bucket === '') throw invalidOption('--bucket is required')
    if (prefixes === undefined) throw invalidOption('--prefix is required (repeat it for several prefixes)')
    if (values.since === undefined) throw invalidOption('--since is required (such as 24h, or 2026-01-31T00:00:00Z)')
    const since = parseSince(values.since as string, now())
    // Loaded after the arguments: --help and a usage error stay fast, without ali-oss.
    const [{ credentialsFromEnv, openBucket }, { checkWindow, DEFAULT_SETTLE_MS, sweep }, { default: cliProgress }] =
      await Promise.all([import('./oss.js'), import('./sweep.js'), import('cli-progress')])
    const settleMs = values.settle === undefined ? DEFAULT_SETTLE_MS : parseDuration(values.settle as string, '--settle')
    const retentionMs = parseDuration(io.env.OSS_CALLBACK_RETENTION ?? DEFAULT_RETENTION, 'OSS_CALLBACK_RETENTION')
    const databaseUrl = io.env.OSS_CALLBACK_DATABASE_URL ?? ''
    if (databaseUrl === '') throw invalidOption('OSS_CALLBACK_DATABASE_URL must name the event log (sqlite:<path> or postgres://...)')
    const reader = (deps.openBucket ?? openBucket)({
      bucket,
      ...(values.endpoint === undefined ? {} : { endpoint: values.endpoint as string }),
      ...(values.region === undefined ? {} : { region: values.region as string }),
      credentials: credentialsFromEnv(io.env)
    })
    // The window is checked before the store opens, so a refusal costs nothing.
    checkWindow(since, now(), retentionMs)
    store = deps.openStore !== undefined
      ? await deps.openStore(databaseUrl)
      : await (await import('../events/open.js')).openEventStore(databaseUrl, { create: false })
    const dryRun = values['dry-run'] === true
    const json = values.json === true
    const objects: UnconfirmedObject[] = []
    let onPage: ((r: Readonly<SweepReport>) => void) | undefined
    if (io.stderr.isTTY === true && !json) {
      const bar = new cliProgress.SingleBar({
        stream: io.stderr as unknown as NodeJS.WritableStream,
        format: `reconcile ${bucket} | listed {value} | matched {matched} | new {new} | skipped {skipped}`,
        hideCursor: true,
        clearOnComplete: true
      })
      bar.start(1, 0, { matched: 0, new: 0, skipped: 0 })
      onPage = (r) => { bar.setTotal(Math.max(1, r.listed)); bar.update(r.listed, { matched: r.matched, new: r.new, skipped: r.skipped }) }
      stopProgress = () => { bar.stop(); stopProgress = () => {} }
    }
    const report = await sweep({
      store,
      reader,
      bucket,
      prefixes,
      since,
      settleMs,
      retentionMs,
      dryRun,
      now,
      ...(deps.pageSize === undefined ? {} : { pageSize: deps.pageSize }),
      ...(deps.signal === undefined ? {} : { signal: deps.signal }),
      ...(onPage === undefined ? {} : { onPage }),
      onUnconfirmed: (o) => {
        if (json) objects.push(o)
        else io.stdout.write(`${dryRun ? 'would record' : 'recorded'} oss.object.unconfirmed ${JSON.stringify(o.key)} etag ${o.etag} size ${o.size} modified ${o.lastModified}\n`)
      }
    })
    stopProgress()
    if (report.unmatchable > 0) {
      io.stderr.write(`oss-callback reconcile: warning: ${report.unmatchable} callback event(s) in the window name no bucket or object and cannot be matched; put \${bucket}, \${object} and \${etag} in every callback body\n`)
    }
    if (json) io.stdout.write(`${JSON.stringify({ bucket, since: new Date(since).toISOString(), ...report, unconfirmed: objects })}\n`)
    else io.stdout.write(`${dryRun ? 'dry run: ' : ''}listed ${report.listed}, matched ${report.matched}, new ${report.new}, skipped ${report.skipped}\n`)
    return 0
  } catch (err) {
    stopProgress()
    io.stderr.write(`oss-callback reconcile: ${oneLine(err)}\n`)
    return 1
  } finally {
    await store?.close()
  }
}
