// The example upstream in docker/ (the one compose runs) really verifies what forward mode sends.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

const SECRET = `whsec_${randomBytes(32).toString('base64')}`
const SCRIPT = new URL('../../docker/upstream/server.mjs', import.meta.url)

let keys: KeyServer
let upstream: ChildProcess
let upstreamUrl = ''
let app: FastifyInstance
let base = ''

beforeAll(async () => {
  keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: testKeyPair(512).publicPem } })
  upstream = spawn(process.execPath, [SCRIPT.pathname], {
    env: { PATH: process.env.PATH, OSS_CALLBACK_FORWARD_SECRET: SECRET, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  upstreamUrl = await new Promise<string>((resolve, reject) => {
    let out = ''
    upstream.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /"port":(\d+)/.exec(out)
      if (m !== null) resolve(`http://127.0.0.1:${m[1] as string}/oss-callback`)
    })
    upstream.on('exit', (code) => reject(new Error(`upstream exited ${String(code)}`)))
  })
  app = await buildApp(loadConfig({
    LOG_LEVEL: 'silent',
    OSS_CALLBACK_KEY_ORIGINS: keys.origin,
    OSS_CALLBACK_FORWARD_URL: upstreamUrl,
    OSS_CALLBACK_DATABASE_URL: 'none',
    OSS_CALLBACK_FORWARD_SECRET: SECRET
  }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await app?.close()
  upstream?.kill('SIGTERM')
  await keys?.close()
})

describe('docker/upstream/server.mjs behind forward mode', () => {
  it('accepts a forwarded callback and its reply reaches OSS unchanged', async () => {
    const cb = signedCallback({ body: 'bucket=b&object=dir%2Fa.png&size=42&x:uid=7', keyUrl: keys.url('/k.pem'), privateKey: testKeyPair(512).privateKey })
    const res = await fetch(base + cb.url, { method: 'POST', headers: cb.headers, body: cb.body })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('{"Status":"OK","object":"dir/a.png","size":42,"vars":{"x:uid":"7"}}')
  })

  it('refuses a replayed envelope, a tampered one, an old one and one without signature headers', async () => {
    // Signed by the Standard Webhooks library, as the gateway signs: the hand-written check agrees with it.
    const body = JSON.stringify({ type: 'oss.callback.verified', timestamp: new Date().toISOString(), data: { system: { object: 'x', size: 1 }, vars: {}, ossRequestId: null } })
    const id = `msg_${randomBytes(8).toString('hex')}`
    const now = new Date()
    const headers = {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': new Webhook(SECRET).sign(id, now, body)
    }
    const first = await fetch(upstreamUrl, { method: 'POST', headers, body: body })
    expect(first.status).toBe(200)
    const replay = await fetch(upstreamUrl, { method: 'POST', headers, body: body })
    expect(replay.status).toBe(401)
    expect(await replay.json()).toEqual({ error: 'replayed webhook-id' })
    const tampered = await fetch(upstreamUrl, { method: 'POST', headers: { ...headers, 'webhook-id': 'msg_new' }, body: body })
    expect(await tampered.json()).toEqual({ error: 'signature does not match' })
    const old = new Date(Date.now() - 6 * 60_000)
    const stale = await fetch(upstreamUrl, {
      method: 'POST',
      headers: { ...headers, 'webhook-id': 'msg_old', 'webhook-timestamp': String(Math.floor(old.getTime() / 1000)), 'webhook-signature': new Webhook(SECRET).sign('msg_old', old, body) },
      body
    })
    expect(await stale.json()).toEqual({ error: 'timestamp outside the tolerance' })
    const bare = await fetch(upstreamUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body })
    expect(await bare.json()).toEqual({ error: 'missing webhook headers' })
  })
})
