import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type OSS from 'ali-oss'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openEventStore } from '../../src/events/open.js'
import { eventId, type EventStore, type NewEvent } from '../../src/events/store.js'
import { unconfirmedEventId } from '../../src/reconcile/envelope.js'
import { runReconcileCommand, type ReconcileCommandIo } from '../../src/reconcile/command.js'
import type { BucketReader } from '../../src/reconcile/oss.js'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import { aliOssClient } from '../sim/stack.js'

const BUCKET = 'recbucket'
let dir: string
let sim: Simulator
let client: OSS
let files = 0

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oss-cb-reconcile-'))
  sim = await startSimulator({ port: 0 })
  client = aliOssClient(sim, BUCKET)
})
afterAll(async () => {
  await sim?.close()
  rmSync(dir, { recursive: true, force: true })
})

let n = 0
function callbackEvent (over: Partial<NewEvent>): NewEvent {
  n++
  return { id: eventId({ path: '/cb', query: '', body: Buffer.from(`b${n}`), requestId: `r${n}` }), type: 'oss.callback.verified', bucket: BUCKET, objectKey: null, etag: null, envelope: '{}', ...over }
}

async function newStore (): Promise<{ url: string, store: EventStore }> {
  const url = `sqlite:${join(dir, `log-${++files}.sqlite`)}`
  return { url, store: await openEventStore(url) }
}

interface Run { code: number, out: string, err: string }

/** Runs the command as the CLI does, with its clock `aheadMs` past real time (objects put now are then settled). */
async function reconcile (args: string[], url: string, options: { aheadMs?: number, env?: Record<string, string>, reader?: (r: BucketReader) => BucketReader, pageSize?: number } = {}): Promise<Run> {
  let out = ''
  let err = ''
  const io: ReconcileCommandIo = {
    env: { OSS_CALLBACK_DATABASE_URL: url, OSS_ACCESS_KEY_ID: sim.credentials.accessKeyId, OSS_ACCESS_KEY_SECRET: sim.credentials.accessKeySecret, ...options.env },
    stdout: { write: (c: string) => { out += c } },
    stderr: { write: (c: string) => { err += c } },
    deps: {
      now: () => Date.now() + (options.aheadMs ?? 10 * 60_000),
      ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
      ...(options.reader === undefined
        ? {}
        : { openBucket: (address) => { return options.reader!(aliOssClient(sim, address.bucket) as unknown as BucketReader) } })
    }
  }
  const code = await runReconcileCommand(args, io)
  return { code, out, err }
}

const base = (prefix: string): string[] => ['--bucket', BUCKET, '--prefix', prefix, '--since', '1h', '--endpoint', 'http://placeholder.invalid']
const json = (r: Run): Record<string, unknown> => JSON.parse(r.out) as Record<string, unknown>

describe('reconcile: matching', () => {
  it('matches by bucket and key, and by ETag where the event has one; rejected counts; no-object events are warned about', async () => {
    const { url, store } = await newStore()
    const put = async (key: string): Promise<string> => {
      const r = await client.put(key, Buffer.from(`content of ${key}`), { headers: { 'x-oss-meta-owner': 'u1' }, mime: 'text/plain' } as never)
      return String((r.res.headers as Record<string, string>).etag).replaceAll('"', '')
    }
    const etagA = await put('m/a.txt')
    await put('m/b.txt')
    await put('m/c.txt')
    const etagD = await put('m/d.txt')
    await put('m/e.txt')
    await put('m/f.txt')
    await store.append(callbackEvent({ objectKey: 'm/a.txt', etag: `"${etagA.toLowerCase()}"` })) // quotes and case differ
    await store.append(callbackEvent({ objectKey: 'm/b.txt', etag: null })) // the body named no ETag
    await store.append(callbackEvent({ objectKey: 'm/c.txt', etag: 'AN0LDERVERS10N' })) // an earlier version
    const rejected = await store.append(callbackEvent({ objectKey: 'm/d.txt', etag: etagD }))
    await store.finish(rejected.event.id, 'rejected', null)
    await store.append(callbackEvent({ bucket: 'otherbucket', objectKey: 'm/f.txt', etag: null }))
    await store.append(callbackEvent({ objectKey: null }))
    await store.append(callbackEvent({ bucket: null, objectKey: 'm/e.txt' }))
    await store.close()

    const run = await reconcile([...base('m/'), '--json'], url, { reader: (r) => r })
    expect(run.code).toBe(0)
    const report = json(run)
    expect(report).toMatchObject({ bucket: BUCKET, listed: 6, matched: 3, new: 3, skipped: 0, unmatchable: 2, dryRun: false })
    expect((report.unconfirmed as Array<{ key: string }>).map((o) => o.key)).toEqual(['m/c.txt', 'm/e.txt', 'm/f.txt'])
    expect(run.err).toBe('oss-callback reconcile: warning: 2 callback event(s) in the window name no bucket or object and cannot be matched; put ${bucket}, ${object} and ${etag} in every callback body\n')
  })

  it('records an envelope of the forward envelope\'s shape, with what HeadObject says, under an id from bucket, key and ETag; a second run records nothing', async () => {
    const { url, store } = await newStore()
    await store.close()
    const put = await client.put('shape/photo.bin', Buffer.from('hello'), { headers: { 'x-oss-meta-owner': 'u1', 'x-oss-meta-Trip': 'Lhasa' }, mime: 'image/x-test' } as never)
    const etag = String((put.res.headers as Record<string, string>).etag).replaceAll('"', '')
    const first = await reconcile(base('shape/'), url, { reader: (r) => r })
    expect(first).toMatchObject({ code: 0, err: '' })
    expect(first.out).toMatch(/^recorded oss\.object\.unconfirmed "shape\/photo\.bin" etag 5D41402ABC4B2A76B9719D911017C592 size 5 modified \S+Z\nlisted 1, matched 0, new 1, skipped 0\n$/)

    const reopened = await openEventStore(url)
    const id = unconfirmedEventId(BUCKET, 'shape/photo.bin', etag)
    const event = await reopened.get(id)
    expect(event).toMatchObject({ type: 'oss.object.unconfirmed', bucket: BUCKET, objectKey: 'shape/photo.bin', etag, state: 'pending' })
    const envelope = JSON.parse(event!.envelope) as { type: string, timestamp: string, data: Record<string, unknown> }
    expect(envelope.type).toBe('oss.object.unconfirmed')
    expect(Object.keys(envelope.data).sort()).toEqual(['bodyType', 'fields', 'keySource', 'keyUrl', 'ossRequestId', 'path', 'query', 'rawBodyBase64', 'system', 'vars'])
    expect(envelope.data).toMatchObject({ vars: {}, fields: {}, rawBodyBase64: null, keySource: null, keyUrl: null, path: null, query: null, bodyType: null, ossRequestId: null })
    expect(envelope.data.system).toEqual({
      bucket: BUCKET,
      object: 'shape/photo.bin',
      etag: '5D41402ABC4B2A76B9719D911017C592',
      size: 5,
      mimeType: 'image/x-test',
      imageInfo: {},
      crc64: expect.stringMatching(/^\d+$/),
      lastModified: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/),
      meta: { 'x-oss-meta-owner': 'u1', 'x-oss-meta-trip': 'Lhasa' }
    })
    await reopened.close()

    const second = await reconcile([...base('shape/'), '--json'], url, { reader: (r) => r })
    expect(json(second)).toMatchObject({ listed: 1, matched: 1, new: 0, unconfirmed: [] })
  })
})

describe('reconcile: window, dry run, paging', () => {
  beforeAll(async () => {
    for (let i = 0; i < 7; i++) await client.put(`w/${i}.txt`, Buffer.from(`w${i}`))
  })

  it('leaves alone objects younger than --settle (default 2m) and older than --since', async () => {
    const { url, store } = await newStore()
    await store.close()
    const young = await reconcile([...base('w/'), '--json'], url, { aheadMs: 60_000, reader: (r) => r })
    expect(json(young)).toMatchObject({ listed: 7, matched: 0, new: 0, skipped: 7 })
    const settled = await reconcile([...base('w/'), '--settle', '30s', '--json', '--dry-run'], url, { aheadMs: 60_000, reader: (r) => r })
    expect(json(settled)).toMatchObject({ listed: 7, new: 7, skipped: 0 })
    const since = new Date(Date.now() + 60_000).toISOString()
    const old = await reconcile(['--bucket', BUCKET, '--prefix', 'w/', '--since', since, '--endpoint', 'http://x.invalid', '--json'], url, { reader: (r) => r })
    expect(json(old)).toMatchObject({ listed: 7, new: 0, skipped: 7 })
  })

  it('--dry-run records nothing and lists what it would', async () => {
    const { url, store } = await newStore()
    await store.close()
    const dry = await reconcile([...base('w/'), '--dry-run'], url, { reader: (r) => r })
    expect(dry.code).toBe(0)
    const lines = dry.out.trim().split('\n')
    expect(lines).toHaveLength(8)
    expect(lines[0]).toMatch(/^would record oss\.object\.unconfirmed "w\/0\.txt" etag [0-9A-F]{32} size 2 modified /)
    expect(lines[7]).toBe('dry run: listed 7, matched 0, new 7, skipped 0')
    const reopened = await openEventStore(url)
    expect((await reopened.stats()).counts.pending).toBe(0)
    await reopened.close()
  })

  it('pages through the listing (small pages, one store query per page) with the same result', async () => {
    const { url, store } = await newStore()
    const pages: number[] = []
    let lookups = 0
    const counting = new Proxy(store, {
      get: (target, prop, receiver) => prop === 'findByObjects'
        ? async (...args: Parameters<EventStore['findByObjects']>) => { lookups++; return await target.findByObjects(...args) }
        : Reflect.get(target, prop, receiver) as unknown
    })
    const run = await reconcile([...base('w/'), '--json'], url, {
      pageSize: 3,
      reader: (r) => ({
        listV2: async (q, o) => { const page = await r.listV2(q, o); pages.push(page.objects?.length ?? 0); return page },
        head: async (name, o) => await r.head(name, o)
      })
    })
    expect(pages).toEqual([3, 3, 1])
    expect(json(run)).toMatchObject({ listed: 7, new: 7 })
    // The counting store is exercised through the sweep directly.
    const { sweep } = await import('../../src/reconcile/sweep.js')
    const report = await sweep({ store: counting, reader: aliOssClient(sim, BUCKET) as unknown as BucketReader, bucket: BUCKET, prefixes: ['w/'], since: Date.now() - 3_600_000, now: () => Date.now() + 600_000, pageSize: 2 })
    expect(report).toMatchObject({ listed: 7, matched: 7, new: 0 })
    expect(lookups).toBe(4)
    await store.close()
  })
})

describe('reconcile: refusals and exit codes', () => {
  it('--help exits 0; unknown flags and missing options exit 1 with one line', async () => {
    const help = await reconcile(['--help'], 'sqlite:unused')
    expect(help.code).toBe(0)
    expect(help.out).toContain('Usage: oss-callback reconcile --bucket <name> --prefix <p>')
    const unknown = await reconcile([...base('w/'), '--frobnicate'], 'sqlite:unused')
    expect([unknown.code, unknown.err.split('\n').length]).toEqual([1, 2])
    expect(unknown.err).toMatch(/^oss-callback reconcile: Unknown option '--frobnicate'/)
    const noBucket = await reconcile(['--prefix', 'w/', '--since', '1h'], 'sqlite:unused')
    expect([noBucket.code, noBucket.err]).toEqual([1, 'oss-callback reconcile: Invalid option: --bucket is required (OSS_CB_ERR_INVALID_OPTION)\n'])
    const noKeys = await reconcile(base('w/'), 'sqlite:unused', { env: { OSS_ACCESS_KEY_ID: '' } })
    expect(noKeys.code).toBe(1)
    expect(noKeys.err).toMatch(/^oss-callback reconcile: Invalid option: OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET must be set .*\n$/)
  })

  it('--since further back than the log\'s retention exits 1 with one line', async () => {
    const { url, store } = await newStore()
    await store.close()
    const far = await reconcile(['--bucket', BUCKET, '--prefix', 'w/', '--since', '8d', '--endpoint', 'http://x.invalid'], url, { aheadMs: 0 })
    expect(far).toMatchObject({ code: 1, out: '' })
    expect(far.err).toBe('oss-callback reconcile: Invalid option: since reaches back 8d, further than the event log keeps callbacks (7d, OSS_CALLBACK_RETENTION): the log no longer knows those callbacks (OSS_CB_ERR_INVALID_OPTION)\n')
    const longer = await reconcile(['--bucket', BUCKET, '--prefix', 'w/', '--since', '8d', '--dry-run', '--json'], url, { aheadMs: 0, env: { OSS_CALLBACK_RETENTION: '30d' }, reader: (r) => r })
    expect(longer.code).toBe(0)
  })

  it('an unreachable endpoint, or a missing event log, exits 1 with one line', async () => {
    const { url, store } = await newStore()
    await store.close()
    const down = await reconcile([...base('w/').slice(0, -2), '--endpoint', 'http://127.0.0.1:1'], url)
    expect(down.code).toBe(1)
    expect(down.err).toMatch(/^oss-callback reconcile: connect ECONNREFUSED 127\.0\.0\.1:1, GET http:\/\/127\.0\.0\.1:1\/\?list-type=2\S*\n$/)
    const missing = await reconcile(base('w/'), `sqlite:${join(dir, 'none.sqlite')}`, { reader: (r) => r })
    expect(missing.code).toBe(1)
    expect(missing.err).toMatch(/^oss-callback reconcile: Event store unusable: no event store at .*none\.sqlite \(OSS_CB_ERR_STORE_UNUSABLE\)\n$/)
  })
})
