#!/usr/bin/env node
// Soak test: N signed callbacks over C keep-alive connections to a real receiver on 127.0.0.1.
// Passes when there is no error, every accepted callback reached the handler exactly once,
// and the receiver's memory stays flat. Run `npm run build` first (npm ci does).
//
//   node scripts/soak.js [--count 100000] [--connections 50] [--json]
import { fork } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { Agent, createServer, request } from 'node:http'
import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import process from 'node:process'
import { clearInterval, setInterval } from 'node:timers'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const ROLE_SERVER = '--serve'

if (process.argv[2] === ROLE_SERVER) {
  await runServer()
} else {
  process.exitCode = await runSoak()
}

/** The receiver under test, in its own process so that its memory is measured alone. */
async function runServer () {
  const { buildApp, loadConfig } = await import('../dist/server.js')
  const count = Number(process.env.SOAK_COUNT)
  const seen = new Uint8Array(count)
  let handled = 0
  let unknown = 0
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', OSS_CALLBACK_KEY_ORIGINS: process.env.SOAK_KEY_ORIGIN, LOG_LEVEL: 'warn' })
  const app = await buildApp(config, {
    handler: (callback) => {
      handled++
      const id = Number(callback.vars['x:id'])
      if (Number.isSafeInteger(id) && id >= 0 && id < count) seen[id] = Math.min(255, (seen[id] ?? 0) + 1)
      else unknown++
      return { Status: 'OK', id }
    }
  })
  await app.listen({ host: config.host, port: 0 })
  const sample = () => {
    globalThis.gc?.()
    const m = process.memoryUsage()
    process.send({ type: 'memory', rss: m.rss, heapUsed: m.heapUsed })
  }
  const timer = setInterval(sample, 500)
  process.on('message', async (msg) => {
    if (msg.type === 'report') {
      sample()
      process.send({ type: 'report', handled, unknown, seen })
    } else if (msg.type === 'exit') {
      clearInterval(timer)
      await app.close()
      process.disconnect()
    }
  })
  // If the driver dies, do not linger as an orphan server.
  process.on('disconnect', () => { clearInterval(timer); app.close().finally(() => process.exit(0)) })
  process.send({ type: 'ready', port: app.server.address().port })
}

async function runSoak () {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: process.env.SOAK_COUNT ?? '100000' },
      connections: { type: 'string', default: process.env.SOAK_CONNECTIONS ?? '50' },
      json: { type: 'boolean', default: false }
    }
  })
  const count = Number(values.count)
  const connections = Number(values.connections)
  if (!Number.isSafeInteger(count) || count <= 0 || count > 10_000_000) throw new Error('--count must be a whole number from 1 to 10000000')
  if (!Number.isSafeInteger(connections) || connections <= 0 || connections > 1000) throw new Error('--connections must be a whole number from 1 to 1000')
  const { buildStringToSign, splitRequestTarget } = await import('../dist/protocol/string-to-sign.js')
  const { signCallback } = await import('../dist/protocol/signature.js')

  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 512, publicExponent: 65537 })
  const pem = publicKey.export({ type: 'spki', format: 'pem' })
  let keyFetches = 0
  const keyServer = createServer((_req, res) => { keyFetches++; res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(pem) })
  await new Promise((resolve) => keyServer.listen(0, '127.0.0.1', resolve))
  const keyOrigin = `http://127.0.0.1:${keyServer.address().port}`
  const keyUrlHeader = Buffer.from(`${keyOrigin}/soak.pem`).toString('base64')

  const child = fork(fileURLToPath(import.meta.url), [ROLE_SERVER], {
    env: { ...process.env, SOAK_COUNT: String(count), SOAK_KEY_ORIGIN: keyOrigin },
    execArgv: ['--expose-gc'],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const memory = []
  let done = 0
  let reportResolve
  const report = new Promise((resolve) => { reportResolve = resolve })
  const port = await new Promise((resolve, reject) => {
    child.on('message', (msg) => {
      if (msg.type === 'ready') resolve(msg.port)
      else if (msg.type === 'memory') memory.push({ at: done, rss: msg.rss, heapUsed: msg.heapUsed })
      else if (msg.type === 'report') reportResolve(msg)
    })
    child.once('exit', (code) => reject(new Error(`receiver exited early with ${code}`)))
  })

  const agent = new Agent({ keepAlive: true, maxSockets: connections })
  const accepted = new Uint8Array(count)
  const failures = new Map()
  const latencies = new Float64Array(count)
  let next = 0
  const fail = (what) => failures.set(what, (failures.get(what) ?? 0) + 1)

  const send = (id) => new Promise((resolve) => {
    const body = Buffer.from(`bucket=soak&object=soak%2F${id}.bin&size=${id}&x%3Aid=${id}`)
    const path = `/oss/callback?n=${id}`
    const authorization = signCallback(privateKey, buildStringToSign(splitRequestTarget(path), body))
    const start = performance.now()
    const req = request({
      host: '127.0.0.1', port, path, method: 'POST', agent,
      headers: { authorization, 'x-oss-pub-key-url': keyUrlHeader, 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length }
    }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        latencies[id] = performance.now() - start
        const text = Buffer.concat(chunks).toString()
        if (res.statusCode === 200 && text === `{"Status":"OK","id":${id}}`) accepted[id] = 1
        else fail(`status ${res.statusCode}`)
        resolve()
      })
    })
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')))
    req.on('error', (err) => { fail(err.code ?? err.message); resolve() })
    req.end(body)
  })

  const started = performance.now()
  await Promise.all(Array.from({ length: connections }, async () => {
    while (next < count) {
      const id = next++
      await send(id)
      done++
    }
  }))
  const seconds = (performance.now() - started) / 1000
  agent.destroy()

  child.send({ type: 'report' })
  const { handled, unknown, seen } = await report
  child.send({ type: 'exit' })
  await new Promise((resolve) => child.once('exit', resolve))
  keyServer.close()

  let acceptedCount = 0
  let handledOnce = 0
  let lost = 0
  let duplicated = 0
  for (let id = 0; id < count; id++) {
    if (accepted[id] === 1) acceptedCount++
    if (seen[id] === 1) handledOnce++
    if (seen[id] > 1) duplicated++
    if (accepted[id] === 1 && seen[id] !== 1) lost++
  }
  const sorted = Array.from(latencies).sort((a, b) => a - b)
  const pct = (p) => Number((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(2))
  // Memory after warm-up (the first fifth) against the end; sampled after a full GC.
  const warm = memory.filter((m) => m.at >= count * 0.2)
  const first = warm[0] ?? memory[0]
  const last = memory[memory.length - 1]
  const mb = (n) => Math.round(n / 1048576 * 10) / 10
  const rssGrowthMb = mb(last.rss - first.rss)
  const heapGrowthMb = mb(last.heapUsed - first.heapUsed)
  // Growth is judged only on runs long enough to leave warm-up behind.
  const memoryJudged = count >= 20_000
  const memoryStable = !memoryJudged || (rssGrowthMb < 64 && heapGrowthMb < 16)

  const summary = {
    ok: failures.size === 0 && acceptedCount === count && handledOnce === count && lost === 0 && duplicated === 0 && unknown === 0 && handled === count && memoryStable,
    count,
    connections,
    seconds: Number(seconds.toFixed(1)),
    perSecond: Math.round(count / seconds),
    latencyMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1) },
    accepted: acceptedCount,
    handled,
    handledOnce,
    lost,
    duplicated,
    unknown,
    errors: Object.fromEntries(failures),
    keyFetches,
    memory: {
      judged: memoryJudged,
      stable: memoryStable,
      rssMb: { afterWarmUp: mb(first.rss), end: mb(last.rss), max: mb(Math.max(...memory.map((m) => m.rss))) },
      heapUsedMb: { afterWarmUp: mb(first.heapUsed), end: mb(last.heapUsed) },
      rssGrowthMb,
      heapGrowthMb,
      samples: memory.length
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  else process.stdout.write(`${JSON.stringify(summary, null, 2)}\n${summary.ok ? 'soak: PASS' : 'soak: FAIL'}\n`)
  return summary.ok ? 0 : 1
}
