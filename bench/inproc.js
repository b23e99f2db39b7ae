// `npm run build && node bench/inproc.js [ROUNDS]`: CPU µs per callback in one process, no sockets.
// Scenarios (b), (c) and the c-no-verify diagnostic through `app.inject`, and the framework-free
// `verifier.verify()`, interleaved
// round by round and reported as medians: steadier than HTTP runs when other processes share the
// cores, so this is the tool to compare a change before and after. Not a substitute for `npm run bench`.
import { generateKeyPairSync } from 'node:crypto'
import Fastify, { LogController } from 'fastify'
import formbody from '@fastify/formbody'
import { createCallbackVerifier } from '../dist/index.js'
import { ossCallback } from '../dist/fastify.js'
import { CALLBACK_BODY, CALLBACK_PATH, signedCallback } from './common.js'

const rounds = Number(process.argv[2] ?? 9)
const perRound = 3000
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 512, publicExponent: 65537 })
const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
const keyOrigin = 'http://127.0.0.1:9'
const callback = signedCallback(privateKey, `${keyOrigin}/bench-512.pem`)
const fastify = () => Fastify({ logger: { level: 'info' }, logController: new LogController({ disableRequestLogging: true }) })

const parseApp = fastify()
await parseApp.register(formbody)
parseApp.post(CALLBACK_PATH, async (request) => {
  if (request.body.bucket === undefined) throw new Error('body not parsed')
  return {}
})
const pluginApp = fastify()
// The key comes through the provider's cache, as in the HTTP scenario (c), from a fetch that never leaves the process.
const verifier = createCallbackVerifier({ keyOrigins: [keyOrigin], keys: { fetch: async () => new Response(pem) } })
await pluginApp.register(ossCallback, { path: CALLBACK_PATH, verifier, handler: () => ({}) })
// The plugin around a verifier that hands back a ready result: the plugin's own cost.
const stubApp = fastify()
let ready
const stub = { ...verifier, verify: async (req, options) => (ready ??= await verifier.verify(req, options)) }
await stubApp.register(ossCallback, { path: CALLBACK_PATH, verifier: stub, handler: () => ({}) })
await Promise.all([parseApp.ready(), pluginApp.ready(), stubApp.ready()])

const injectOptions = { method: 'POST', url: callback.path, headers: callback.headers, payload: callback.body }
const request = { url: callback.path, headers: callback.headers, body: CALLBACK_BODY }

async function cpuPerCall (fn) {
  const start = process.cpuUsage()
  for (let i = 0; i < perRound; i++) await fn()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / perRound
}
const inject = (app) => async () => {
  const res = await app.inject(injectOptions)
  if (res.statusCode !== 200 || res.body !== '{}') throw new Error(`unexpected reply ${res.statusCode} ${res.body}`)
}
const cases = { b: inject(parseApp), c: inject(pluginApp), 'c-no-verify': inject(stubApp), verify: () => verifier.verify(request) }
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))
for (const fn of Object.values(cases)) await cpuPerCall(fn)
for (let r = 0; r < rounds; r++) {
  for (const [k, fn] of Object.entries(cases)) samples[k].push(await cpuPerCall(fn))
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1]
const result = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v) * 10) / 10]))
result['c-b'] = Math.round((result.c - result.b) * 10) / 10
result['c/b (CPU, b µs over c µs)'] = Math.round(result.b / result.c * 100) / 100
process.stdout.write(JSON.stringify(result) + '\n')
