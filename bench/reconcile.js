// Reconciliation at scale, against dist/ on 127.0.0.1: 100,000 objects under one prefix in the simulator
// (put into its store directly), a SQLite event log holding 100,000 events (99 % of the objects matched,
// the rest unconfirmed: HeadObject and an append each), one sweep with ali-oss through ListObjectsV2.
// Measures the sweep's time and its RSS growth (sampled every 50 ms); the simulator runs in a child process.
// Usage: npm run build && node bench/reconcile.js [--objects 100000] [--unconfirmed 1000]; `npm run bench -- --only reconcile`.
import { fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { clearInterval, setInterval } from 'node:timers'
import { parseArgs } from 'node:util'
import { openEventStore } from '../dist/events/open.js'
import { eventId } from '../dist/events/store.js'
import { openBucket } from '../dist/reconcile/oss.js'
import { sweep } from '../dist/reconcile/sweep.js'
import { buildSimulator, listenSimulator } from '../dist/sim/server.js'
import { config } from './common.js'

const etagOf = (key) => createHash('md5').update(key).digest('hex').toUpperCase()
const keyOf = (n) => `uploads/2026/11/photo-${String(n).padStart(7, '0')}.jpg`

if (process.env.BENCH_RECONCILE_SIM !== undefined) {
  // The simulator's process: fill its store directly (its key index keeps them sorted), then serve.
  const count = Number(process.env.BENCH_RECONCILE_SIM)
  const built = await buildSimulator({ port: 0 })
  const modified = new Date(Date.now() - 3_600_000)
  const data = Buffer.from('x')
  for (let n = 0; n < count; n++) {
    await built.context.store.put({ bucket: 'benchbucket', key: keyOf(n), data, contentType: 'image/jpeg', etag: etagOf(keyOf(n)), crc64: '0', lastModified: modified, meta: {}, objectType: 'Normal' })
  }
  const sim = await listenSimulator(built)
  process.send({ type: 'ready', origin: sim.origin, credentials: sim.credentials })
  process.on('disconnect', () => { sim.close().then(() => process.exit(0)) })
  await new Promise(() => {})
}

const fromParent = process.send !== undefined ? config() : {}
const { values: args } = parseArgs({ options: { objects: { type: 'string' }, unconfirmed: { type: 'string' } } })
const OBJECTS = Number(args.objects ?? fromParent.objects ?? 100_000)
const UNCONFIRMED = Number(args.unconfirmed ?? fromParent.unconfirmed ?? Math.round(OBJECTS / 100))
const EVENTS = OBJECTS
const BUCKET = 'benchbucket'
const log = (line) => process.stderr.write(`[reconcile] ${line}\n`)
const mib = (b) => Math.round(b / 2 ** 20 * 10) / 10

const dir = mkdtempSync(join(tmpdir(), 'oss-cb-bench-reconcile-'))
const simChild = fork(new URL(import.meta.url).pathname, [], { env: { ...process.env, BENCH_RECONCILE_SIM: String(OBJECTS) }, stdio: ['ignore', 2, 2, 'ipc'] })
const simExited = new Promise((resolve) => simChild.once('exit', resolve))
let t = Date.now()
const sim = await new Promise((resolve, reject) => {
  simChild.once('message', resolve)
  simChild.once('exit', () => reject(new Error('the simulator exited')))
})
log(`${OBJECTS} objects put in the simulator in ${Date.now() - t} ms`)
const store = await openEventStore(`sqlite:${join(dir, 'log.sqlite')}`)
try {
  t = Date.now()
  // The first OBJECTS - UNCONFIRMED objects have their callback event; the rest of the log names other objects.
  for (let start = 0; start < EVENTS; start += 1000) {
    const batch = []
    for (let n = start; n < Math.min(start + 1000, EVENTS); n++) {
      const objectKey = n < OBJECTS - UNCONFIRMED ? keyOf(n) : `elsewhere/${n}.jpg`
      batch.push(store.append({
        id: eventId({ path: '/oss/callback', query: '', body: Buffer.from(objectKey), requestId: `bench-${n}` }),
        type: 'oss.callback.verified',
        bucket: BUCKET,
        objectKey,
        etag: etagOf(objectKey),
        envelope: '{"type":"oss.callback.verified"}'
      }))
    }
    await Promise.all(batch)
  }
  log(`${EVENTS} events appended in ${Date.now() - t} ms`)

  globalThis.gc?.()
  const rssBefore = process.memoryUsage().rss
  let rssPeak = rssBefore
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss) }, 50)
  const reader = openBucket({ bucket: BUCKET, endpoint: sim.origin, credentials: sim.credentials })
  const started = performance.now()
  const report = await sweep({ store, reader, bucket: BUCKET, prefixes: ['uploads/'], since: Date.now() - 86_400_000 })
  const seconds = Math.round((performance.now() - started) / 10) / 100
  clearInterval(sampler)
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
  const result = {
    objects: OBJECTS,
    events: EVENTS,
    listed: report.listed,
    matched: report.matched,
    new: report.new,
    seconds,
    rssBeforeMiB: mib(rssBefore),
    rssPeakMiB: mib(rssPeak),
    rssGrowthMiB: mib(rssPeak - rssBefore)
  }
  log(`sweep: ${result.listed} listed, ${result.matched} matched, ${result.new} new in ${seconds} s; RSS ${result.rssBeforeMiB} → peak ${result.rssPeakMiB} MiB (+${result.rssGrowthMiB})`)
  if (report.listed !== OBJECTS || report.new !== UNCONFIRMED) throw new Error('the sweep did not find what the bench put in')
  if (process.send !== undefined) process.send({ type: 'result', result })
  else process.stdout.write(JSON.stringify(result, null, 2) + '\n')
} finally {
  await store.close()
  simChild.disconnect()
  await simExited
  rmSync(dir, { recursive: true, force: true })
}
