import Fastify, { type FastifyInstance } from 'fastify'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createDiagnostics, type Diagnostics } from '../../src/diagnose/explain.js'
import { KeyProvider } from '../../src/keys/provider.js'
import { ossCallback } from '../../src/receiver/plugin.js'
import { createCallbackVerifier } from '../../src/receiver/verify.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { captureLogger } from '../helpers/log-capture.js'
import { startNginx, type NginxServer } from '../helpers/nginx.js'
import { runCli } from '../helpers/process.js'

const pair = testKeyPair(512)
const HINT = 'OSS signed /api/oss/callback; the request arrived as /oss/callback: a proxy strips /api (x-original-uri holds the original). Set OSS_CALLBACK_PUBLIC_PATH=/api/oss/callback (publicPath)'

let keyServer: KeyServer
let captureDir: string
let receiver: { app: FastifyInstance, diagnostics: Diagnostics, log: ReturnType<typeof captureLogger> } | undefined
let nginx: NginxServer | undefined

beforeAll(async () => {
  keyServer = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } })
  captureDir = join(mkdtempSync(join(tmpdir(), 'oss-cb-nginx-e2e-')), 'captures')
})
afterEach(async () => {
  await nginx?.stop()
  nginx = undefined
  await receiver?.app.close()
  receiver = undefined
})
afterAll(async () => {
  await keyServer.close()
  rmSync(join(captureDir, '..'), { recursive: true, force: true })
})

/** The receiver behind nginx, on its own loopback port, with diagnostics and captures on. */
async function startBehindNginx (publicPath?: string): Promise<{ nginx: NginxServer, receiver: NonNullable<typeof receiver> }> {
  const log = captureLogger('info')
  const keys = new KeyProvider({ fetchTimeoutMs: 2000 })
  const verifier = createCallbackVerifier({ keyOrigins: [keyServer.origin], keys, publicPath })
  const diagnostics = createDiagnostics({ keys, policy: verifier.policy, publicPath, captureDir })
  const app = Fastify({ loggerInstance: log.logger })
  await app.register(ossCallback, {
    path: '/oss/callback',
    verifier,
    diagnostics
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  receiver = { app, diagnostics, log }
  nginx = await startNginx(`    location /api/ { proxy_pass http://127.0.0.1:${port}/; proxy_set_header X-Original-URI $request_uri; }`)
  return { nginx, receiver }
}

function callback (): ReturnType<typeof signedCallback> {
  return signedCallback({ url: '/api/oss/callback', keyUrl: keyServer.url('/k.pem'), privateKey: pair.privateKey, body: 'bucket=b&object=uploads%2Fa.jpg&size=42' })
}

async function post (origin: string, cb: ReturnType<typeof signedCallback>): Promise<Response> {
  return await fetch(`${origin}${cb.url}`, { method: 'POST', headers: cb.headers, body: cb.body, signal: AbortSignal.timeout(10_000) })
}

describe('behind Debian\'s nginx, which strips /api', () => {
  it('refuses with a plain coded 403, logs the hint naming OSS_CALLBACK_PUBLIC_PATH, and captures the request; diagnose on the capture exits 2 with the same hint', async () => {
    const { nginx, receiver } = await startBehindNginx()
    const res = await post(nginx.origin, callback())
    expect(res.status).toBe(403)
    const text = await res.text()
    expect(JSON.parse(text)).toEqual({ statusCode: 403, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', error: 'Forbidden', message: 'The callback signature does not verify' })
    expect(text).not.toContain('PUBLIC_PATH')

    const lines = receiver.log.lines()
    const refused = lines.find((l) => l.msg === 'callback refused')
    expect(refused).toMatchObject({ level: 40, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', hint: HINT })
    expect(HINT).toContain('OSS_CALLBACK_PUBLIC_PATH=/api/oss/callback')

    await receiver.diagnostics.flush()
    const files = readdirSync(captureDir)
    expect(files).toHaveLength(1)
    const cli = runCli(['diagnose', join(captureDir, files[0] as string)], { OSS_CALLBACK_KEY_ORIGINS: keyServer.origin })
    expect(await cli.exited).toBe(2)
    expect(cli.stdout()).toContain('  POST /oss/callback HTTP/1.0')
    expect(cli.stdout()).toContain('  X-Original-URI: /api/oss/callback')
    expect(cli.stdout()).toContain(`hint: ${HINT}\n`)
    expect(cli.stderr()).toBe('')
  })

  it('with OSS_CALLBACK_PUBLIC_PATH=/api/oss/callback the same callback verifies', async () => {
    const { nginx, receiver } = await startBehindNginx('/api/oss/callback')
    const res = await post(nginx.origin, callback())
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ Status: 'OK' })
    expect(receiver.log.lines().filter((l) => l.level === 40)).toEqual([])
  })
})
