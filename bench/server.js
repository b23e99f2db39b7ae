// Child process: one scenario's server on 127.0.0.1, port sent over IPC. Answers `stats` (RSS, key fetches) and `stop`.
import { get } from 'node:http'
import { createServer } from 'node:http'
import { verify as cryptoVerify } from 'node:crypto'
import { parse as parseQuery } from 'node:querystring'
import Fastify, { LogController } from 'fastify'
import formbody from '@fastify/formbody'
import { createCallbackVerifier } from '../dist/index.js'
import { ossCallback } from '../dist/fastify.js'
import { buildStringToSign, splitRequestTarget } from '../dist/protocol/string-to-sign.js'
import { createForgeVerifier } from '../dist/receiver/signature-verifier.js'
import { boundLifetime, CALLBACK_PATH, config } from './common.js'

const { scenario, keyOrigin, lifetimeMs, appUrl, databaseUrl } = config()
boundLifetime(lifetimeMs)

// Every Fastify scenario is built alike, as the standalone server is: pino at info, no per-request log lines.
function fastify () {
  return Fastify({
    logger: { level: 'info' },
    logController: new LogController({ disableRequestLogging: true })
  })
}

let verifier
let close

async function startFastify () {
  const app = fastify()
  if (scenario === 'bare') {
    // Fastify has no form parser of its own: read the bytes, parse nothing.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })
    app.post(CALLBACK_PATH, async () => ({}))
  } else if (scenario === 'parse') {
    await app.register(formbody)
    app.post(CALLBACK_PATH, async (request) => {
      if (request.body.bucket === undefined) throw new Error('body not parsed')
      return {}
    })
  } else {
    verifier = createCallbackVerifier({
      keyOrigins: [keyOrigin],
      ...(scenario === 'plugin-forge' ? { signatureVerifier: createForgeVerifier() } : {}),
      // Diagnostic: everything but the RSA check.
      ...(scenario === 'plugin-no-rsa' ? { signatureVerifier: () => true } : {}),
      // Diagnostic: each callback verified at once, between its read and its reply.
      ...(scenario === 'plugin-unbatched' ? { batchVerifications: false } : {})
    })
    if (scenario === 'plugin-no-verify') {
      // Diagnostic: the plugin's own cost, around a verifier that hands back a callback it verified once.
      const real = verifier
      let verified
      verifier = { ...real, verify: async (request, options) => (verified ??= await real.verify(request, options)) }
    }
    await app.register(ossCallback, { path: CALLBACK_PATH, verifier, handler: () => ({}) })
  }
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 2048 })
  httpServer = app.server
  close = () => app.close()
  return app.server.address().port
}

// In the style of the public Node sample: no cache, the PEM string handed to crypto.verify on every callback.
function fetchText (url) {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => resolve(text))
      res.on('error', reject)
    }).on('error', reject)
  })
}

function startNaive () {
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', async () => {
      try {
        const body = Buffer.concat(chunks)
        const keyUrl = Buffer.from(req.headers['x-oss-pub-key-url'], 'base64').toString()
        if (!keyUrl.startsWith(keyOrigin + '/')) throw new Error('key URL not allowed')
        const pem = await fetchText(keyUrl)
        const signature = Buffer.from(req.headers.authorization, 'base64')
        const data = buildStringToSign(splitRequestTarget(req.url), body)
        if (!cryptoVerify('md5', data, pem, signature)) throw new Error('bad signature')
        const fields = parseQuery(body.toString())
        if (fields.bucket === undefined) throw new Error('body not parsed')
        const reply = JSON.stringify({})
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply) }).end(reply)
      } catch {
        res.writeHead(400).end()
      }
    })
  })
  httpServer = server
  close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) })
  return new Promise((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, () => resolve(server.address().port)))
}

// Forward mode as `serve` runs it (buildApp from the environment's variables), direct or through the event log.
async function startForward () {
  const { buildApp } = await import('../dist/server/app.js')
  const { loadConfig } = await import('../dist/server/config.js')
  const app = await buildApp(loadConfig({
    LOG_LEVEL: 'info',
    OSS_CALLBACK_KEY_ORIGINS: keyOrigin,
    OSS_CALLBACK_FORWARD_URL: appUrl,
    OSS_CALLBACK_FORWARD_SECRET: 'whsec_' + Buffer.alloc(32, 1).toString('base64'),
    OSS_CALLBACK_DATABASE_URL: scenario === 'forward-direct' ? 'none' : databaseUrl
  }))
  // The load generator repeats one signed callback; OSS gives each its own (unsigned) request id, and so does
  // this, or every callback after the first would be a resent one answered from the log without a write.
  let n = 0
  app.addHook('onRequest', (request, _reply, done) => { request.headers['x-oss-request-id'] = `bench-${process.pid}-${n++}`; done() })
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 2048 })
  httpServer = app.server
  close = () => app.close()
  return app.server.address().port
}

let connections = 0
let httpServer
const port = scenario === 'naive' ? await startNaive() : scenario.startsWith('forward-') ? await startForward() : await startFastify()
httpServer.on('connection', () => { connections++ })
process.send({ type: 'ready', port })

process.on('message', async (m) => {
  if (m.type === 'stats') {
    const mem = process.memoryUsage()
    const cpu = process.cpuUsage()
    process.send({ type: 'stats', rss: mem.rss, heapUsed: mem.heapUsed, cpuUs: cpu.user + cpu.system, connections, keys: verifier === undefined ? null : { ...verifier.keys.stats } })
  }
  if (m.type === 'stop') {
    await close()
    process.exit(0)
  }
})
