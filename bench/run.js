// `npm run bench [-- --quick] [--only a,b,c512,c2048,d,d2048,e,fwd,fwd-sqlite,fwd-pg,micro,cold,memory,imports,events,reconcile,c-unbatched,c-no-rsa,c-no-verify] [--postgres <url of an empty database>] [--seconds N] [--rounds N] [--cpu-prof] [--server-flags "--max-semi-space-size=32"] [--note TEXT] [--out FILE]`
// Orchestrates every scenario in one run so that ratios compare like with like. JSON on stdout; progress on stderr.
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ask, forkChild, nextMessage, signedCallback } from './common.js'
import { cliHelpCosts, entryImportCosts, installSize } from './import-cost.js'
import { renderMarkdown } from './report.js'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    note: { type: 'string' },
    out: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    'server-flags': { type: 'string' },
    postgres: { type: 'string' }
  }
})
const quick = args.quick
const plan = quick
  ? { rounds: 1, warmupS: 0.3, durationS: 1, microS: 0.2, opensslS: 1, burst: 1000, memFirst: 1_000, memTotal: 3_000 }
  : { rounds: 3, warmupS: 2, durationS: 10, microS: 3, opensslS: 3, burst: 1000, memFirst: 20_000, memTotal: 200_000 }
if (args.seconds !== undefined) plan.durationS = Number(args.seconds)
if (args.rounds !== undefined) plan.rounds = Number(args.rounds)
if (!Number.isSafeInteger(plan.rounds) || plan.rounds < 1 || !(plan.durationS > 0)) {
  process.stderr.write('bench: --rounds must be a whole number from 1, --seconds a positive number\n')
  process.exit(2)
}
const CONNECTIONS = 50
const COLD_KEY_DELAY_MS = 50
const CHILD_LIFETIME_MS = quick ? 120_000 : 900_000
const only = args.only === undefined ? undefined : new Set(args.only.split(','))
const wanted = (name) => only === undefined || only.has(name)
const outFile = args.out ?? (quick || only !== undefined || args.seconds !== undefined || args.rounds !== undefined || args['server-flags'] !== undefined || args['no-write'] ? undefined : new URL('./RESULTS.md', import.meta.url))

const log = (text) => process.stderr.write(`[bench] ${text}\n`)
const children = new Set()
const hardStop = setTimeout(() => {
  log('hard time limit reached, stopping')
  for (const c of children) c.kill()
  process.exit(1)
}, quick ? 170_000 : 1_800_000)
hardStop.unref()

function spawn (script, cfg, execArgv) {
  const { child, exited } = forkChild(script, { lifetimeMs: CHILD_LIFETIME_MS, ...cfg }, execArgv)
  children.add(child)
  exited.then(() => children.delete(child))
  return { child, exited }
}

async function runChild (script, cfg) {
  const { child, exited } = spawn(script, cfg)
  const { result } = await nextMessage(child, 'result', CHILD_LIFETIME_MS)
  await exited
  return result
}

async function startServer (scenario, keyOrigin, extra = {}) {
  const execArgv = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${new URL('./profiles', import.meta.url).pathname}`, `--cpu-prof-name=${scenario}-${Date.now()}.cpuprofile`] : []
  // Node flags for every server process, such as --max-semi-space-size=32, to compare tunings.
  if (args['server-flags'] !== undefined) execArgv.push(...args['server-flags'].split(' ').filter((f) => f !== ''))
  const { child, exited } = spawn('./server.js', { scenario, keyOrigin, ...extra }, execArgv)
  const { port } = await nextMessage(child, 'ready', 60_000)
  return {
    port,
    stats: () => ask(child, { type: 'stats' }),
    stop: async () => { child.send({ type: 'stop' }); await exited }
  }
}

async function sanityCheck (port, callback, expected = '{}') {
  const res = await fetch(`http://127.0.0.1:${port}${callback.path}`, { method: 'POST', headers: callback.headers, body: callback.body })
  const text = await res.text()
  if (res.status !== 200 || text !== expected) throw new Error(`sanity check failed: ${res.status} ${text.slice(0, 200)}`)
}

const loader = spawn('./load.js', {})
await nextMessage(loader.child, 'ready', 60_000)

async function load (port, callback, extra) {
  const { result } = await ask(loader.child, { type: 'run', task: { mode: 'cannon', port, callback, connections: CONNECTIONS, ...extra } }, CHILD_LIFETIME_MS)
  return result
}

async function burst (port, callback, count) {
  const { result } = await ask(loader.child, { type: 'run', task: { mode: 'burst', port, callback, count } }, CHILD_LIFETIME_MS)
  return result
}

function checkClean (name, r) {
  if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0) throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`)
}

const machine = {
  nproc: Number(execFileSync('nproc').toString().trim()),
  cpuModel: (readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)?.[1] ?? cpus()[0]?.model ?? 'unknown').trim(),
  memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
  freeMemoryGiB: Math.round(freemem() / 2 ** 30 * 10) / 10,
  kernel: release(),
  node: process.version,
  loadAvgAtStart: loadavg().map((v) => Math.round(v * 100) / 100)
}
const startedAt = new Date()
log(`${quick ? 'quick' : 'full'} run on ${machine.nproc} x ${machine.cpuModel}, Node ${machine.node}, load average ${machine.loadAvgAtStart.join(' ')}`)

const keys = {}
for (const bits of [512, 2048]) keys[bits] = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 })
const pemOf = (bits) => keys[bits].publicKey.export({ type: 'spki', format: 'pem' }).toString()

const keyServer = spawn('./key-server.js', {
  routes: {
    '/bench-512.pem': { pem: pemOf(512) },
    '/bench-2048.pem': { pem: pemOf(2048) },
    '/naive-512.pem': { pem: pemOf(512) },
    '/cold-512.pem': { pem: pemOf(512), delayMs: COLD_KEY_DELAY_MS }
  }
})
const { port: keyPort } = await nextMessage(keyServer.child, 'ready', 30_000)
const keyOrigin = `http://127.0.0.1:${keyPort}`
const keyHits = async () => (await ask(keyServer.child, { type: 'hits' })).hits

const SCENARIOS = [
  { id: 'a', name: 'bare', label: '(a) bare Fastify route answering {}', bits: 512, keyPath: '/bench-512.pem' },
  { id: 'b', name: 'parse', label: '(b) same route, body parsed (@fastify/formbody)', bits: 512, keyPath: '/bench-512.pem' },
  { id: 'c512', name: 'plugin', label: '(c) oss-callback plugin, 512-bit key', bits: 512, keyPath: '/bench-512.pem' },
  { id: 'c2048', name: 'plugin', label: '(c) oss-callback plugin, 2048-bit key', bits: 2048, keyPath: '/bench-2048.pem' },
  { id: 'd', name: 'plugin-forge', label: '(d) oss-callback plugin on node-forge, 512-bit key', bits: 512, keyPath: '/bench-512.pem' },
  { id: 'd2048', name: 'plugin-forge', label: '(d) oss-callback plugin on node-forge, 2048-bit key', bits: 2048, keyPath: '/bench-2048.pem' },
  // Forward mode to a fast local app (another process): direct, then through the durable event log.
  { id: 'fwd', name: 'forward-direct', label: '(f) forward mode, direct (OSS_CALLBACK_DATABASE_URL=none)', bits: 512, keyPath: '/bench-512.pem', forward: true },
  { id: 'fwd-sqlite', name: 'forward-sqlite', label: '(f) forward mode, durable: SQLite, an fsync before every acknowledgement', bits: 512, keyPath: '/bench-512.pem', forward: true },
  ...(args.postgres === undefined ? [] : [{ id: 'fwd-pg', name: 'forward-postgres', label: '(f) forward mode, durable: PostgreSQL', bits: 512, keyPath: '/bench-512.pem', forward: true }]),
  { id: 'e', name: 'naive', label: '(e) naive receiver: raw http, key fetched per callback, PEM string', bits: 512, keyPath: '/naive-512.pem' },
  // Diagnostics: where (c)'s time goes.
  { id: 'c-no-rsa', name: 'plugin-no-rsa', label: '(diagnostic) plugin, RSA check replaced by `true`', bits: 512, keyPath: '/bench-512.pem', diagnostic: true },
  { id: 'c-unbatched', name: 'plugin-unbatched', label: '(diagnostic) plugin, 512-bit key, `batchVerifications: false`', bits: 512, keyPath: '/bench-512.pem', diagnostic: true },
  { id: 'c-no-verify', name: 'plugin-no-verify', label: '(diagnostic) plugin around a verifier returning a ready result', bits: 512, keyPath: '/bench-512.pem', diagnostic: true }
]

let forwardApp
let tempDir
const benchDir = () => (tempDir ??= mkdtempSync(join(tmpdir(), 'oss-cb-bench-')))
async function startForwardApp () {
  const { child, exited } = spawn('./events-app.js', { lifetimeMs: CHILD_LIFETIME_MS })
  const { port } = await nextMessage(child, 'ready', 30_000)
  return { url: `http://127.0.0.1:${port}/hook`, stop: async () => { child.send({ type: 'stop' }); await exited } }
}

const results = {
  kind: quick ? 'quick' : 'full',
  date: startedAt.toISOString(),
  machine,
  note: args.note ?? null,
  serverFlags: args['server-flags'] ?? null,
  settings: { connections: CONNECTIONS, ...plan, bodyBytes: Buffer.byteLength(signedCallback(keys[512].privateKey, keyOrigin).body) },
  scenarios: {},
  ratios: {},
  cpuRatios: {},
  micro: null,
  coldBurst: null,
  memory: null,
  imports: null,
  events: null,
  reconcile: null
}

try {
  // Rounds: every scenario once per round, in the same order, so that a slow spell on a shared
  // machine hits one round of each rather than all of one scenario. Other tenants only ever slow a
  // round down, so each scenario's best round is reported, and every round is kept.
  const rounds = new Map()
  for (let round = 1; round <= plan.rounds; round++) {
    for (const s of SCENARIOS) {
      // Diagnostics run in the full run and when named; the quick run skips them.
      if (!wanted(s.id) || (s.diagnostic && only === undefined && quick)) continue
      const callback = signedCallback(keys[s.bits].privateKey, keyOrigin + s.keyPath)
      let forward = {}
      if (s.forward) {
        forwardApp ??= await startForwardApp()
        const databaseUrl = s.name === 'forward-sqlite' ? `sqlite:${join(benchDir(), `events-${round}.sqlite`)}` : s.name === 'forward-postgres' ? args.postgres : undefined
        forward = { appUrl: forwardApp.url, databaseUrl }
      }
      const server = await startServer(s.name, keyOrigin, forward)
      try {
        await sanityCheck(server.port, callback, s.forward ? '{"Status":"OK"}' : '{}')
        await load(server.port, callback, { durationS: plan.warmupS })
        const before = await server.stats()
        const r = await load(server.port, callback, { durationS: plan.durationS })
        const after = await server.stats()
        checkClean(s.id, r)
        // Server CPU time per callback: steadier than req/s when other processes share the cores.
        const cpuUsPerReq = Math.round((after.cpuUs - before.cpuUs) / r.requests * 10) / 10
        // Keep-alive must hold: a scenario that reconnects per request measures TCP set-up, not callbacks.
        const newConnections = after.connections - before.connections
        const row = { label: s.label, ...r, cpuUsPerReq, newConnections }
        rounds.set(s.id, [...(rounds.get(s.id) ?? []), row])
        log(`${s.id}${plan.rounds > 1 ? ` (round ${round}/${plan.rounds})` : ''}: ${Math.round(r.reqPerSec)} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, server CPU ${cpuUsPerReq} µs per callback, ${newConnections} new connections`)
      } finally {
        await server.stop()
      }
    }
  }
  for (const [id, rows] of rounds) {
    const best = rows.reduce((x, y) => (y.reqPerSec > x.reqPerSec ? y : x))
    results.scenarios[id] = { ...best, rounds: rows }
  }

  const ratios = (field, invert) => {
    const v = (id) => results.scenarios[id]?.[field]
    const ratio = (x, y) => (v(x) === undefined || v(y) === undefined) ? null : Math.round((invert ? v(y) / v(x) : v(x) / v(y)) * 100) / 100
    return {
      'c/a': ratio('c512', 'a'),
      'c/b': ratio('c512', 'b'),
      'c/d': ratio('c512', 'd'),
      'c/e': ratio('c512', 'e'),
      'c2048/b': ratio('c2048', 'b'),
      'c2048/d2048': ratio('c2048', 'd2048'),
      'fwd-sqlite/fwd': ratio('fwd-sqlite', 'fwd'),
      'fwd-pg/fwd': ratio('fwd-pg', 'fwd')
    }
  }
  results.ratios = ratios('reqPerSec', false)
  // The same ratios from server CPU time per callback (inverted, so that higher is better for (c) here too).
  results.cpuRatios = ratios('cpuUsPerReq', true)

  if (wanted('micro')) {
    log('micro: string-to-sign + verify, and openssl speed')
    results.micro = await runChild('./micro.js', { seconds: plan.microS, opensslSeconds: plan.opensslS })
  }

  if (wanted('cold')) {
    const callback = signedCallback(keys[512].privateKey, keyOrigin + '/cold-512.pem')
    const server = await startServer('plugin', keyOrigin)
    try {
      const before = (await keyHits())['/cold-512.pem'] ?? 0
      const r = await burst(server.port, callback, plan.burst)
      const fetches = ((await keyHits())['/cold-512.pem'] ?? 0) - before
      const stats = await server.stats()
      results.coldBurst = { ...r, keyServerDelayMs: COLD_KEY_DELAY_MS, keyFetches: fetches, providerFetches: stats.keys.fetches }
      log(`cold burst: ${r.count} callbacks, ${fetches} key fetch(es), all answered in ${Math.round(r.allAnsweredMs)} ms, statuses ${JSON.stringify(r.statuses)}`)
    } finally {
      await server.stop()
    }
  }

  if (wanted('memory')) {
    const callback = signedCallback(keys[512].privateKey, keyOrigin + '/bench-512.pem')
    const server = await startServer('plugin', keyOrigin)
    try {
      const before = await server.stats()
      const first = await load(server.port, callback, { amount: plan.memFirst })
      checkClean('memory', first)
      const afterFirst = await server.stats()
      const rest = await load(server.port, callback, { amount: plan.memTotal - plan.memFirst })
      checkClean('memory', rest)
      const after = await server.stats()
      const mib = (b) => Math.round(b / 2 ** 20 * 10) / 10
      results.memory = {
        callbacks: plan.memTotal,
        firstCallbacks: plan.memFirst,
        rssBeforeMiB: mib(before.rss),
        rssAfterFirstMiB: mib(afterFirst.rss),
        rssAfterMiB: mib(after.rss),
        heapUsedAfterFirstMiB: mib(afterFirst.heapUsed),
        heapUsedAfterMiB: mib(after.heapUsed),
        growthAfterFirstPct: Math.round((after.rss / afterFirst.rss - 1) * 1000) / 10
      }
      log(`memory: RSS ${results.memory.rssBeforeMiB} MiB before, ${results.memory.rssAfterFirstMiB} after ${plan.memFirst}, ${results.memory.rssAfterMiB} after ${plan.memTotal}`)
    } finally {
      await server.stop()
    }
  }

  if (wanted('imports')) {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    const specifiers = Object.keys(pkg.exports).filter((k) => k !== './package.json').map((k) => k === '.' ? 'oss-callback' : `oss-callback/${k.slice(2)}`)
    const runs = quick ? 3 : 10
    log(`import cost: ${specifiers.length} entry points, ${runs} fresh processes each, then npm install of the packed tarball`)
    const commands = ['', 'serve', 'sim', 'send', 'upload', 'demo', 'diagnose']
    results.imports = { entries: await entryImportCosts(specifiers, runs), cli: await cliHelpCosts(commands, runs), install: await installSize() }
    for (const e of results.imports.entries) log(`${e.specifier}: median ${e.medianMs} ms, ${e.modules} modules`)
    for (const c of results.imports.cli) log(`${c.command}: median ${c.medianMs} ms`)
    const i = results.imports.install
    log(`npm install oss-callback --omit=dev: ${i.packages} packages, ${Math.round(i.nodeModulesBytes / 2 ** 20 * 10) / 10} MiB`)
  }

  if (wanted('events')) {
    const events = quick ? 10_000 : 100_000
    log(`event log: SQLite appends with group commit${args.postgres === undefined ? '' : ' and PostgreSQL'}, then a drain of ${events} pending events to a fast local app`)
    results.events = await runChild('./events.js', { events, appends: quick ? 2000 : 20_000, ...(args.postgres === undefined ? {} : { postgres: args.postgres }) })
    const d = results.events.drain
    log(`drain: ${d.perSecond} events/s, worker CPU ${d.workerCpuMicrosPerEvent} µs per event, RSS +${d.rssGrowthMb} MB`)
  }

  if (wanted('reconcile')) {
    const objects = quick ? 10_000 : 100_000
    log(`reconcile: one sweep of ${objects} objects in the simulator against a log of ${objects} events`)
    results.reconcile = await runChild('./reconcile.js', { objects })
    const r = results.reconcile
    log(`reconcile: ${r.listed} listed, ${r.new} new in ${r.seconds} s, RSS +${r.rssGrowthMiB} MiB`)
  }
} finally {
  await forwardApp?.stop()
  if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true })
  keyServer.child.send({ type: 'stop' })
  loader.child.disconnect()
  await Promise.all([keyServer.exited, loader.exited])
}

results.machine.loadAvgAtEnd = loadavg().map((v) => Math.round(v * 100) / 100)
results.elapsedS = Math.round((Date.now() - startedAt.getTime()) / 100) / 10
if (outFile !== undefined) {
  writeFileSync(outFile, renderMarkdown(results))
  log(`wrote ${outFile instanceof URL ? outFile.pathname : outFile}`)
}
process.stdout.write(JSON.stringify(results, null, 2) + '\n')
