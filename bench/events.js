// The event log and the delivery worker, measured on 127.0.0.1 against dist/:
//  1. SQLite append throughput with group commit, 50 appends always in flight (and 1, for the cost of one commit);
//  2. drain: 100,000 pending events delivered by the worker to a fast local app (another process), with RSS sampled.
//  3. with --postgres <url> (an empty database), PostgreSQL append throughput at 50 in flight too.
// Usage: npm run build && node bench/events.js [--events 100000] [--appends 20000] [--concurrency 16] [--postgres <url>]
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { clearInterval, setInterval } from 'node:timers'
import { parseArgs } from 'node:util'
import { createDeliveryWorker } from '../dist/delivery/worker.js'
import { openEventStore } from '../dist/events/open.js'
import { eventId } from '../dist/events/store.js'
import { ask, CALLBACK_BODY, config, forkChild, nextMessage } from './common.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    appends: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '16' },
    postgres: { type: 'string' }
  }
})
// Forked by `npm run bench` (bench/run.js): its settings come over BENCH_CONFIG and the result goes back over IPC.
const fromParent = process.send !== undefined ? config() : {}
const EVENTS = Number(fromParent.events ?? args.events)
const APPENDS = Number(fromParent.appends ?? args.appends)
const CONCURRENCY = Number(fromParent.concurrency ?? args.concurrency)
const POSTGRES = fromParent.postgres ?? args.postgres
const SECRET = 'whsec_' + Buffer.alloc(32, 1).toString('base64')
const log = (line) => process.stderr.write(line + '\n')

// The envelope forward mode sends for the benchmark's callback (about 1 KB).
function envelope (n) {
  return JSON.stringify({
    type: 'oss.callback.verified',
    timestamp: new Date().toISOString(),
    data: {
      ossRequestId: `bench-${n}`,
      keyUrl: 'http://127.0.0.1:9/key.pem',
      keySource: 'cache',
      path: '/oss/callback',
      query: '',
      bodyType: 'form',
      system: { bucket: 'examplebucket', object: `uploads/2026/11/photo-${n}.jpg`, etag: '5B3C1A2E053D763E1B002CC607C5A0FE', size: 2483751, mimeType: 'image/jpeg' },
      vars: { 'x:uid': '1042', 'x:tag': 'cat' },
      fields: { bucket: 'examplebucket', object: `uploads/2026/11/photo-${n}.jpg` },
      rawBodyBase64: CALLBACK_BODY.toString('base64')
    }
  })
}

function newEvent (n, firstAttemptAt) {
  return {
    id: eventId({ path: '/oss/callback', query: '', body: CALLBACK_BODY, requestId: `bench-${n}` }),
    type: 'oss.callback.verified',
    bucket: 'examplebucket',
    objectKey: `uploads/2026/11/photo-${n}.jpg`,
    etag: '5B3C1A2E053D763E1B002CC607C5A0FE',
    envelope: envelope(n),
    firstAttemptAt
  }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
const mb = (bytes) => Math.round(bytes / 1024 / 1024 * 10) / 10

async function appendBench (url, inFlight, total) {
  let commits = 0
  const store = await openEventStore(url, { onCommit: () => { commits++ } })
  const latencies = []
  let next = 0
  const started = performance.now()
  async function client () {
    while (next < total) {
      const n = next++
      const t = performance.now()
      await store.append(newEvent(n))
      latencies.push(performance.now() - t)
    }
  }
  await Promise.all(Array.from({ length: inFlight }, client))
  const seconds = (performance.now() - started) / 1000
  await store.close()
  latencies.sort((a, b) => a - b)
  return {
    store: url.startsWith('sqlite:') ? 'sqlite' : 'postgres',
    inFlight,
    appends: total,
    perSecond: Math.round(total / seconds),
    transactions: commits,
    appendsPerTransaction: Math.round(total / commits * 10) / 10,
    p50Ms: Math.round(percentile(latencies, 0.5) * 100) / 100,
    p99Ms: Math.round(percentile(latencies, 0.99) * 100) / 100
  }
}

async function drainBench (dir) {
  const store = await openEventStore(`sqlite:${join(dir, 'drain.sqlite')}`)
  // Fill: due now, appended 1000 per turn.
  const fillStarted = performance.now()
  for (let base = 0; base < EVENTS; base += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, EVENTS - base) }, (_, i) => store.append(newEvent(base + i))))
  }
  log(`filled ${EVENTS} pending events in ${Math.round(performance.now() - fillStarted)} ms`)
  const app = forkChild('./events-app.js', { lifetimeMs: 600_000 })
  const { port } = await nextMessage(app.child, 'ready', 10_000)
  globalThis.gc?.()
  const rssBefore = process.memoryUsage().rss
  let rssPeak = rssBefore
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss) }, 100)
  let delivered = 0
  let failed = 0
  let done
  const finished = new Promise((resolve) => { done = resolve })
  const worker = createDeliveryWorker({
    store,
    url: `http://127.0.0.1:${port}/hook`,
    secret: SECRET,
    concurrency: CONCURRENCY,
    onAttempt: ({ result }) => {
      if (result.outcome === 'delivered') delivered++
      else failed++
      if (delivered + failed === EVENTS) done()
    },
    onError: (err) => log(`worker error: ${err.message}`)
  })
  const appCpuBefore = (await ask(app.child, { type: 'stats' })).cpuMicros
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  worker.start()
  await finished
  const seconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  await worker.close()
  clearInterval(sampler)
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
  const stats = await store.stats()
  const { received, cpuMicros: appCpuAfter } = await ask(app.child, { type: 'stats' })
  app.child.send({ type: 'stop' })
  await app.exited
  await store.close()
  return {
    events: EVENTS,
    concurrency: CONCURRENCY,
    seconds: Math.round(seconds * 100) / 100,
    perSecond: Math.round(EVENTS / seconds),
    delivered,
    failed,
    appReceived: received,
    pendingAfter: stats.counts.pending,
    // CPU time per event, so a figure from a busy shared machine can be read against a free core.
    workerCpuMicrosPerEvent: Math.round((cpu.user + cpu.system) / EVENTS),
    appCpuMicrosPerEvent: Math.round((appCpuAfter - appCpuBefore) / EVENTS),
    rssBeforeMb: mb(rssBefore),
    rssPeakMb: mb(rssPeak),
    rssGrowthMb: mb(rssPeak - rssBefore)
  }
}

const dir = mkdtempSync(join(tmpdir(), 'oss-cb-bench-events-'))
try {
  const machine = { nproc: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAvgAtStart: loadavg().map((v) => Math.round(v * 100) / 100) }
  log(`events bench on ${machine.nproc} x ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAvgAtStart.join(' ')}`)
  const append = []
  append.push(await appendBench(`sqlite:${join(dir, 'append-1.sqlite')}`, 1, Math.min(APPENDS, 2000)))
  append.push(await appendBench(`sqlite:${join(dir, 'append-50.sqlite')}`, 50, APPENDS))
  if (POSTGRES !== undefined) append.push(await appendBench(POSTGRES, 50, APPENDS))
  for (const a of append) log(`append: ${JSON.stringify(a)}`)
  const drain = await drainBench(dir)
  log(`drain: ${JSON.stringify(drain)}`)
  machine.loadAvgAtEnd = loadavg().map((v) => Math.round(v * 100) / 100)
  const result = { machine, append, drain, targets: { drainPerSecond: drain.perSecond >= 3000, rssGrowth: drain.rssGrowthMb <= 50 } }
  if (process.send !== undefined) process.send({ type: 'result', result })
  else process.stdout.write(JSON.stringify(result, null, 2) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
