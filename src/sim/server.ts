import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import multipart from '@fastify/multipart'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { invalidOption } from '../errors.js'
import { parseTarget, type Target } from './addressing.js'
import { checkRequestSignature, SIM_DEV_CREDENTIALS, type SimCredentials } from './auth.js'
import { describeCallback, runCallback } from './callbacks.js'
import { OSS_CALLBACK_TIMEOUT_MS } from './callback-dispatch.js'
import { checkBucket, headerMap, sendOssError, type SimContext, type SimRequest } from './context.js'
import { runOperation } from './operations.js'
import { OSS_ERRORS, OssHttpError } from './oss-error.js'
import { postObject } from './post-object.js'
import { fireTestCallback, SEND_PATH } from './send-endpoint.js'
import { DiskStore, MemoryStore, type ObjectStore } from './store.js'
import { wholeNumberOption } from '../options.js'

export { SIM_DEV_CREDENTIALS }

/** Options of {@link startSimulator}. */
export interface SimulatorOptions {
  /** TCP port; 0 picks a free one. Default 8090. */
  port?: number
  /** Address to listen on. Default `127.0.0.1`. */
  host?: string
  /** Keep objects on disk here (and the signing key, so its URL stays valid across restarts). Default: in memory. */
  dataDir?: string
  /** Accepted credentials. Default {@link SIM_DEV_CREDENTIALS}. */
  credentials?: SimCredentials
  /** Refuse private, loopback and IPv6 callback hosts as real OSS does. Default false. */
  strict?: boolean
  /** Callback reply timeout per URL, ms. Default 5000, as OSS. */
  callbackTimeoutMs?: number
  /** Largest object or part accepted, bytes. Default 1 GiB (OSS: 5 GiB; the simulator holds bodies in memory). */
  maxObjectBytes?: number
  /** Origin receivers fetch the public key from. Default `http://<host>:<port>` (`127.0.0.1` when listening on all addresses). */
  publicOrigin?: string
  /** The RSA key that signs callbacks. Default: generated (512-bit, as OSS's), or kept in `dataDir`. */
  privateKey?: KeyObject
  /** PEM certificates trusted for https callback URLs besides Node's root store (a local CA such as mkcert's). Default: none. */
  callbackTrustedCa?: readonly string[]
  /** One line per request, for a terminal. Default: silent. */
  log?: (line: string) => void
  /** Clock, for signature and policy expiry checks. Default `() => new Date()`. */
  now?: () => Date
}

/** A running simulator. */
export interface Simulator {
  /** `http://127.0.0.1:<port>`: what clients use as the endpoint and receivers trust. */
  origin: string
  /** The URL of the public key callbacks are signed with. */
  publicKeyUrl: string
  /** The accepted access key pair. */
  credentials: Readonly<SimCredentials>
  /** The port listened on. */
  port: number
  close: () => Promise<void>
}

const KEY_FILE = 'callback-key.pem'

function validateOptions (o: SimulatorOptions): Required<Pick<SimulatorOptions, 'port' | 'host' | 'callbackTimeoutMs' | 'maxObjectBytes'>> {
  const port = wholeNumberOption('port', o.port, 8090, { min: 0, max: 65535 })
  const host = o.host ?? '127.0.0.1'
  const callbackTimeoutMs = wholeNumberOption('callbackTimeoutMs', o.callbackTimeoutMs, OSS_CALLBACK_TIMEOUT_MS, { max: 60_000 })
  const maxObjectBytes = wholeNumberOption('maxObjectBytes', o.maxObjectBytes, 1024 * 1024 * 1024)
  if (typeof host !== 'string' || host === '') throw invalidOption('host must be a non-empty address')
  if (o.credentials !== undefined && (o.credentials.accessKeyId === '' || o.credentials.accessKeySecret === '')) {
    throw invalidOption('credentials need a non-empty access key id and secret')
  }
  if (o.publicOrigin !== undefined) {
    let url: URL | undefined
    try { url = new URL(o.publicOrigin) } catch { url = undefined }
    if (url === undefined || url.origin !== o.publicOrigin.replace(/\/$/, '')) throw invalidOption('publicOrigin must be a bare http(s) origin such as http://127.0.0.1:8090')
  }
  return { port, host, callbackTimeoutMs, maxObjectBytes }
}

function generateSigningKey (): KeyObject {
  // 512 bits like OSS's own key; OpenSSL builds with a hardened policy refuse that, so step up.
  for (const modulusLength of [512, 1024]) {
    try {
      return generateKeyPairSync('rsa', { modulusLength, publicExponent: 65537 }).privateKey
    } catch {
      continue
    }
  }
  return generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 }).privateKey
}

async function loadOrCreateKey (dataDir: string | undefined): Promise<KeyObject> {
  if (dataDir === undefined) return generateSigningKey()
  const file = join(dataDir, KEY_FILE)
  try {
    return createPrivateKey(await readFile(file, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const key = generateSigningKey()
  await mkdir(dataDir, { recursive: true })
  await writeFile(file, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  return key
}

function newRequestId (): string {
  return randomBytes(12).toString('hex').toUpperCase()
}

/** A simulator built but not listening: its Fastify app, ready for `inject()` or {@link listenSimulator}. */
export interface BuiltSimulator {
  app: FastifyInstance
  credentials: Readonly<SimCredentials>
  /** The state the operations share; its `publicKeyUrl` is set once the port is known. */
  context: SimContext
  /** Finishes the set-up that needs the listening address. */
  bind: (address: { host: string, port: number }) => { origin: string, publicKeyUrl: string }
  host: string
  port: number
}

/** Builds the simulator's app (routes, store, signing key) without listening. */
export async function buildSimulator (options: SimulatorOptions = {}): Promise<BuiltSimulator> {
  const { port, host, callbackTimeoutMs, maxObjectBytes } = validateOptions(options)
  const credentials = Object.freeze({ ...(options.credentials ?? SIM_DEV_CREDENTIALS) })
  const store: ObjectStore = options.dataDir === undefined ? new MemoryStore() : new DiskStore(options.dataDir)
  const privateKey = options.privateKey ?? await loadOrCreateKey(options.dataDir)
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' })
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString()
  // The key's fingerprint is in its URL: receivers cache keys by URL, so a new key must get a new URL.
  const keyPath = `/callback_pub_key_sim_${createHash('sha256').update(spki).digest('hex').slice(0, 16)}.pem`
  const ctx: SimContext = {
    store,
    uploads: new Map(),
    credentials,
    strict: options.strict === true,
    now: options.now ?? (() => new Date()),
    log: options.log ?? (() => {}),
    callbackTimeoutMs,
    maxObjectBytes,
    callbackTrustedCa: options.callbackTrustedCa,
    privateKey,
    publicKeyUrl: ''
  }
  const { now, log } = ctx

  const app: FastifyInstance = Fastify({
    logger: false,
    // OSS accepts Transfer-Encoding: chunked together with Content-Length (the C SDK sends both);
    // Node's strict parser answers 400. Body sizes are limited in readBody instead.
    http: { insecureHTTPParser: true },
    exposeHeadRoutes: false,
    bodyLimit: maxObjectBytes,
    routerOptions: { maxParamLength: 8192, ignoreDuplicateSlashes: false },
    // Browsers keep spare sockets that never send a request; without this, close() waits out the headers timeout.
    forceCloseConnections: true
  })
  app.removeAllContentTypeParsers()
  await app.register(multipart, {
    isPartAFile: (fieldName) => fieldName === 'file',
    limits: { fileSize: maxObjectBytes, files: 1, fields: 200, fieldSize: 64 * 1024, parts: 202 }
  })
  // Every other body is read in the handler, streamed, with the simulator's own limit.
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })

  const ownHosts = new Set<string>(['localhost', host.toLowerCase()])

  async function route (request: FastifyRequest, reply: FastifyReply, requestId: string, target: Target): Promise<unknown> {
    const method = request.method
    const headers = headerMap(request.raw)
    const r: SimRequest = { request, reply, target, headers, requestId }
    if (target.pathStyle && target.bucket === undefined) {
      if (method === 'GET' || method === 'HEAD') return reply.code(200).type('application/json').send({ service: 'oss-callback simulator', publicKeyUrl: ctx.publicKeyUrl })
      throw OSS_ERRORS.notImplemented()
    }
    if (target.pathStyle && method === 'GET' && target.path === keyPath) return reply.code(200).type('application/x-pem-file').send(publicPem)
    if (target.pathStyle && target.bucket === '-') {
      if (target.path === '/-/health' && method === 'GET') return reply.code(200).send({ status: 'ok' })
      if (target.path === SEND_PATH && method === 'POST') {
        checkRequestSignature({ method, query: target.query, headers, now: now(), resource: SEND_PATH }, credentials)
        return await fireTestCallback(request, reply, {
          store, strict: ctx.strict, now, requestId, timeoutMs: callbackTimeoutMs,
          run: async (param, object, vars) => {
            const result = await runCallback(ctx, param, object, 'PutObject', requestId, request.ip, vars)
            log(`send ${object.bucket}/${object.key}${describeCallback(result)}`)
            return result
          }
        })
      }
      throw OSS_ERRORS.notImplemented()
    }
    // PostObject is signed by its form's policy, not by an Authorization header.
    const isForm = method === 'POST' && target.key === undefined &&
      (request.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')
    if (isForm) return await postObject(ctx, r)
    checkBucket(target)
    checkRequestSignature({ method, bucket: target.bucket, key: target.key, query: target.query, headers, now: now() }, credentials)
    return await runOperation(ctx, r)
  }

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS'],
    url: '*',
    handler: async (request, reply) => {
      const requestId = newRequestId()
      // Browsers upload to OSS directly (PostObject); the simulator allows any origin, as a permissive bucket CORS rule would.
      reply.headers({
        'x-oss-request-id': requestId,
        server: 'AliyunOSS',
        date: now().toUTCString(),
        'access-control-allow-origin': '*',
        'access-control-expose-headers': 'ETag, x-oss-request-id, x-oss-hash-crc64ecma, Content-MD5'
      })
      if (request.method === 'OPTIONS') {
        return reply.code(200).headers({
          'access-control-allow-methods': 'GET, HEAD, PUT, POST, DELETE',
          'access-control-allow-headers': request.headers['access-control-request-headers'] ?? '*',
          'access-control-max-age': '600'
        }).send()
      }
      let t: Target | undefined
      try {
        t = parseTarget(request.raw.url ?? '/', request.headers.host, ownHosts)
        return await route(request, reply, requestId, t)
      } catch (err) {
        if (err instanceof OssHttpError) {
          log(`${request.method} ${request.raw.url ?? ''} -> ${err.status} ${err.code}`)
          if (!request.raw.complete) {
            // Refused before the upload body was read (a bad signature): discard the rest and close, so a client
            // still streaming its body is neither stalled by back-pressure nor left waiting on a half-read request.
            reply.header('connection', 'close')
            request.raw.resume()
          }
          return sendOssError(reply, err, requestId, t?.bucket, request.method === 'HEAD')
        }
        throw err
      }
    }
  })

  return {
    app,
    credentials,
    context: ctx,
    host,
    port,
    bind: (address) => {
      const originHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : (host.includes(':') ? `[${host}]` : host)
      const origin = `http://${originHost}:${address.port}`
      const keyOrigin = options.publicOrigin?.replace(/\/$/, '') ?? origin
      ctx.publicKeyUrl = `${keyOrigin}${keyPath}`
      ownHosts.add(new URL(keyOrigin).hostname)
      return { origin, publicKeyUrl: ctx.publicKeyUrl }
    }
  }
}

/** Listens on the built simulator's address. A port in use or a bad address rejects with one line naming it. */
export async function listenSimulator (built: BuiltSimulator): Promise<Simulator> {
  const { app, host, port } = built
  try {
    await app.listen({ port, host })
  } catch (err) {
    await app.close()
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    const shown = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
    const reason = code === 'EADDRINUSE' ? 'the address is in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'no such local address' : 'listen failed'
    throw new Error(`cannot listen on ${shown}: ${reason} (${code})`)
  }
  const address = app.server.address() as AddressInfo
  const { origin, publicKeyUrl } = built.bind({ host, port: address.port })
  return {
    origin,
    publicKeyUrl,
    credentials: built.credentials,
    port: address.port,
    close: async () => { await app.close() }
  }
}

/** Starts the simulator and resolves once it listens. */
export async function startSimulator (options: SimulatorOptions = {}): Promise<Simulator> {
  return await listenSimulator(await buildSimulator(options))
}
