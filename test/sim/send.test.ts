import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { crc64 } from '../../src/protocol/crc64.js'
import { runSendCommand, runSimCommand, simCredentialsFromEnv } from '../../src/sim/commands.js'
import { sendTestCallback } from '../../src/sim/send.js'
import { SIM_DEV_CREDENTIALS, startSimulator } from '../../src/sim/server.js'
import { aliOssClient, startFakeReceiver, startStack, type Stack } from './stack.js'

let stack: Stack
beforeAll(async () => { stack = await startStack() })
afterAll(async () => { await stack.close() })

function capture (): { io: { stdout: (t: string) => void, stderr: (t: string) => void }, out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return { io: { stdout: (t) => { out += t }, stderr: (t) => { err += t } }, out: () => out, err: () => err }
}

describe('sendTestCallback', () => {
  it('fires a signed callback the receiver accepts, with the values of a synthetic object', async () => {
    const result = await sendTestCallback({
      simUrl: stack.sim.origin,
      credentials: stack.sim.credentials,
      request: { callbackUrl: stack.callbackUrl, bucket: 'photos', key: 'a/中 文+1.jpg', size: 1000, vars: { uid: '7' }, callbackBody: 'bucket=${bucket}&object=${object}&size=${size}&etag=${etag}&crc64=${crc64}&x:uid=${x:uid}' }
    })
    const zeros = Buffer.alloc(1000)
    expect(result).toMatchObject({ accepted: true, storedObject: false, timeoutMs: 5000 })
    expect(result.attempts).toHaveLength(1)
    expect(result.attempts[0]).toMatchObject({ url: stack.callbackUrl, status: 200, ok: true })
    expect(JSON.parse(result.attempts[0]?.body ?? '')).toEqual({ Status: 'OK', object: 'a/中 文+1.jpg', size: 1000, vars: { 'x:uid': '7' } })
    expect(stack.received.at(-1)?.system).toMatchObject({
      bucket: 'photos',
      etag: createHash('md5').update(zeros).digest('hex').toUpperCase(),
      crc64: crc64(zeros).toString()
    })
    expect(result.sentBody).toBe(stack.received.at(-1)?.raw.toString())
  })

  it('uses the real values of an object stored in the simulator', async () => {
    await aliOssClient(stack.sim).put('stored/for-send.txt', Buffer.from('stored content'))
    const result = await sendTestCallback({
      simUrl: stack.sim.origin,
      credentials: stack.sim.credentials,
      request: { callbackUrl: stack.callbackUrl, key: 'stored/for-send.txt', callbackBodyType: 'json' }
    })
    expect(result.storedObject).toBe(true)
    expect(stack.received.at(-1)?.system).toMatchObject({ size: 14, etag: createHash('md5').update('stored content').digest('hex').toUpperCase(), mimeType: 'text/plain' })
  })

  it('reports what OSS would say about a rejected reply', async () => {
    const redirect = await startFakeReceiver((_req, res) => { res.writeHead(302, { location: '/elsewhere' }).end() })
    try {
      const result = await sendTestCallback({ simUrl: stack.sim.origin, credentials: stack.sim.credentials, request: { callbackUrl: redirect.url } })
      expect(result).toMatchObject({ accepted: false, message: 'Error status : 302.' })
    } finally {
      await redirect.close()
    }
  })

  it('fails with the reason for a bad parameter, wrong credentials or no simulator', async () => {
    await expect(sendTestCallback({ simUrl: stack.sim.origin, credentials: stack.sim.credentials, request: { callbackUrl: stack.callbackUrl, callbackBody: 'a=${nosuch}' } }))
      .rejects.toThrow('the simulator refused the request: OSS_CB_ERR_INVALID_CALLBACK_PARAM: The callback parameter is invalid: The callbackBody uses a variable that is neither a system variable nor x:.')
    await expect(sendTestCallback({ simUrl: stack.sim.origin, credentials: { accessKeyId: stack.sim.credentials.accessKeyId, accessKeySecret: 'wrong' }, request: { callbackUrl: stack.callbackUrl } }))
      .rejects.toThrow(/^the simulator refused the request: SignatureDoesNotMatch: /)
    const gone = await startFakeReceiver((_req, res) => res.end())
    await gone.close()
    await expect(sendTestCallback({ simUrl: new URL(gone.url).origin, credentials: SIM_DEV_CREDENTIALS, request: { callbackUrl: stack.callbackUrl } }))
      .rejects.toThrow(/^cannot reach the simulator at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/)
  })

  // The default (OSS's 5 s) is the `timeoutMs: 5000` of the first test; waiting it out here would add 5 s.
  it('waits the simulator\'s callback timeout for a receiver that never answers, then gives OSS timeout message', async () => {
    const silent = await startFakeReceiver(() => { /* never answers */ })
    const short = await startStack({ callbackTimeoutMs: 300 })
    try {
      const result = await sendTestCallback({ simUrl: short.sim.origin, credentials: short.sim.credentials, request: { callbackUrl: silent.url } })
      expect(result.accepted).toBe(false)
      expect(result.timeoutMs).toBe(300)
      expect(result.message).toBe(`error status:-1 127.0.0.1:${new URL(silent.url).port} reply timeout, cost: 300 MS, timeout: 300 MS`)
      expect(result.attempts[0]?.timedOut).toBe(true)
      expect(result.attempts[0]?.elapsedMs).toBeGreaterThanOrEqual(290)
    } finally {
      await short.close()
      await silent.close()
    }
  })
})

describe('oss-callback send', () => {
  it('exit 0: prints the receiver answer on stdout and the verdict on stderr', async () => {
    const c = capture()
    const code = await runSendCommand([stack.callbackUrl, '--sim', stack.sim.origin, '--key', 'k.txt', '--var', 'a=1', '--var', 'x:b=2=3'], {}, c.io)
    expect(code).toBe(0)
    const answer = JSON.parse(c.out()) as { object: string, vars: Record<string, string> }
    expect(answer.object).toBe('k.txt')
    // The default body carries every --var.
    expect(answer.vars).toEqual({ 'x:a': '1', 'x:b': '2=3' })
    expect(c.err()).toContain('verdict: OSS would accept this reply and relay it to the uploader with 200')
    expect(c.err()).toMatch(/ok {3}status {5}200/)
  })

  it('exit 2 when OSS would not accept the answer; --json prints the whole result', async () => {
    const plain = await startFakeReceiver((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }).end('ok') })
    try {
      const c = capture()
      expect(await runSendCommand([plain.url, '--sim', stack.sim.origin], {}, c.io)).toBe(2)
      expect(c.out()).toBe('ok\n')
      expect(c.err()).toContain('OSS would say: Response body is not valid json format.')
      expect(c.err()).toContain('verdict: OSS would NOT accept it: the uploader would get 203 CallbackFailed')
      const j = capture()
      expect(await runSendCommand([plain.url, '--sim', stack.sim.origin, '--json'], {}, j.io)).toBe(2)
      expect(JSON.parse(j.out())).toMatchObject({ accepted: false, message: 'Response body is not valid json format.' })
    } finally {
      await plain.close()
    }
  })

  it('refuses bad usage with a clear error', async () => {
    const c = capture()
    await expect(runSendCommand([], {}, c.io)).rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION' })
    await expect(runSendCommand(['http://x/', '--callback-body-type', 'xml'], {}, c.io)).rejects.toThrow('--callback-body-type must be form or json')
    await expect(runSendCommand(['http://x/', '--var', 'novalue'], {}, c.io)).rejects.toThrow('--var: "novalue" is not name=value')
    await expect(runSendCommand(['http://x/', '--nope'], {}, c.io)).rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION' })
  })
})

describe('oss-callback sim', () => {
  it('prints the endpoint, the dev credentials, the key URL and the receiver setting', async () => {
    const c = capture()
    const sim = await runSimCommand(['--port', '0'], {}, c.io, false)
    try {
      expect(sim).toBeDefined()
      const origin = sim?.origin ?? ''
      expect(c.out()).toContain(`oss-callback simulator listening on ${origin}`)
      expect(c.out()).toContain('OSS_ACCESS_KEY_ID=oss-sim-dev-access-key-id OSS_ACCESS_KEY_SECRET=oss-sim-dev-access-key-secret')
      expect(c.out()).toContain(`receivers trust it with OSS_CALLBACK_KEY_ORIGINS=https://gosspublic.alicdn.com,http://gosspublic.alicdn.com,${origin}\n`)
      expect(c.out()).toContain(`callback key ${sim?.publicKeyUrl ?? ''}`)
      const pem = await fetch(sim?.publicKeyUrl ?? '')
      expect(pem.status).toBe(200)
      expect(await pem.text()).toMatch(/^-----BEGIN PUBLIC KEY-----/)
    } finally {
      await sim?.close()
    }
  })

  it('--public-origin: the key URL and the trust hint use it, and requests to that host are path style', async () => {
    const c = capture()
    const sim = await runSimCommand(['--port', '0', '--public-origin', 'http://oss-sim.test:8090'], {}, c.io, false)
    try {
      expect(sim?.publicKeyUrl).toMatch(/^http:\/\/oss-sim\.test:8090\/callback_pub_key_sim_[0-9a-f]{16}\.pem$/)
      expect(c.out()).toContain('receivers trust it with OSS_CALLBACK_KEY_ORIGINS=https://gosspublic.alicdn.com,http://gosspublic.alicdn.com,http://oss-sim.test:8090\n')
      const { rawRequest, v1Headers } = await import('./stack.js')
      const s = sim as NonNullable<typeof sim>
      const headers = await v1Headers(s, 'PUT', '/examplebucket/p.txt', { host: 'oss-sim.test:8090' })
      expect((await rawRequest(s.port, 'PUT', '/examplebucket/p.txt', headers, 'x')).status).toBe(200)
      const pem = await rawRequest(s.port, 'GET', new URL(s.publicKeyUrl).pathname, { host: 'oss-sim.test:8090' })
      expect(pem.text).toMatch(/^-----BEGIN PUBLIC KEY-----/)
    } finally {
      await sim?.close()
    }
  })

  it('takes credentials from the environment, both or neither', () => {
    expect(simCredentialsFromEnv({})).toEqual({ credentials: SIM_DEV_CREDENTIALS, dev: true })
    expect(simCredentialsFromEnv({ OSS_ACCESS_KEY_ID: 'id', OSS_ACCESS_KEY_SECRET: 's' })).toEqual({ credentials: { accessKeyId: 'id', accessKeySecret: 's' }, dev: false })
    expect(() => simCredentialsFromEnv({ OSS_ACCESS_KEY_ID: 'id' })).toThrow('set both OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET')
  })

  it('refuses bad flags and options', async () => {
    const c = capture()
    await expect(runSimCommand(['--port', 'abc'], {}, c.io, false)).rejects.toThrow('--port must be a whole number from 0 to 65535')
    await expect(runSimCommand(['--callback-timeout-ms', '0'], {}, c.io, false)).rejects.toThrow('--callback-timeout-ms must be a whole number from 1 to 60000')
    await expect(startSimulator({ publicOrigin: 'http://x/y' })).rejects.toThrow('publicOrigin must be a bare http(s) origin')
  })
})

describe('send: a refusal shows the receiver\'s status and coded body', () => {
  it('prints the receiver\'s 403 and its OSS_CB_ERR_* code besides OSS\'s "Error status : 403.", in text and in --json', async () => {
    // A real receiver that does not trust the simulator's key origin: 403 with a coded JSON body.
    const { buildApp } = await import('../../src/server/app.js')
    const { loadConfig } = await import('../../src/server/config.js')
    const receiver = await buildApp(loadConfig({ OSS_CALLBACK_KEY_ORIGINS: 'http://127.0.0.1:1', LOG_LEVEL: 'silent' }), { handler: () => ({ Status: 'OK' }) })
    await receiver.listen({ port: 0, host: '127.0.0.1' })
    try {
      const url = `http://127.0.0.1:${(receiver.server.address() as { port: number }).port}/oss/callback`
      const text = capture()
      expect(await runSendCommand([url, '--sim', stack.sim.origin], {}, text.io)).toBe(2)
      expect(text.out()).toBe('')
      expect(text.err()).toContain('OSS would say: Error status : 403.')
      expect(text.err()).toMatch(/receiver said: 403 \{"statusCode":403,"code":"OSS_CB_ERR_KEY_URL_NOT_ALLOWED"/)
      const json = capture()
      expect(await runSendCommand([url, '--sim', stack.sim.origin, '--json'], {}, json.io)).toBe(2)
      const result = JSON.parse(json.out()) as { message: string, attempts: Array<{ status: number, body: string }> }
      expect(result.message).toBe('Error status : 403.')
      expect(result.attempts[0]?.status).toBe(403)
      expect(JSON.parse(result.attempts[0]?.body ?? '')).toMatchObject({ statusCode: 403, code: 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED' })
    } finally {
      await receiver.close()
    }
  })

  it('a refusal with no body says so, and a 403 does not wait for a body that never ends', async () => {
    const stall = await startFakeReceiver((_req, res) => { res.writeHead(403, { 'content-type': 'text/plain' }).write('denied') })
    try {
      const t = capture()
      const started = Date.now()
      expect(await runSendCommand([stall.url, '--sim', stack.sim.origin], {}, t.io)).toBe(2)
      expect(Date.now() - started).toBeLessThan(4000)
      expect(t.err()).toContain('receiver said: 403 denied')
      expect(t.err()).toContain('OSS would say: Error status : 403.')
    } finally {
      await stall.close()
    }
    const empty = await startFakeReceiver((_req, res) => { res.writeHead(500).end() })
    try {
      const t = capture()
      expect(await runSendCommand([empty.url, '--sim', stack.sim.origin], {}, t.io)).toBe(2)
      expect(t.err()).toContain('receiver said: 500 (no body)')
    } finally {
      await empty.close()
    }
  })

  it('send --var UID=1 and upload --var UID=1 give the same message', async () => {
    const { runUploadCommand } = await import('../../src/client/command.js')
    let uploadErr = ''
    const env = { OSS_ACCESS_KEY_ID: SIM_DEV_CREDENTIALS.accessKeyId, OSS_ACCESS_KEY_SECRET: SIM_DEV_CREDENTIALS.accessKeySecret }
    const code = await runUploadCommand(['f.txt', '--endpoint', stack.sim.origin, '--region', 'cn-hangzhou', '--bucket', 'examplebucket', '--callback-url', stack.callbackUrl, '--var', 'UID=1'], {
      env, stdout: { write: () => true }, stderr: { write: (c: string) => { uploadErr += c; return true } }
    } as never)
    expect(code).toBe(1)
    const sendErr = await runSendCommand([stack.callbackUrl, '--sim', stack.sim.origin, '--var', 'UID=1'], {}, capture().io).then(() => undefined, (err: Error & { code?: string }) => `${err.code ?? ''}: ${err.message}`)
    expect(sendErr).toBe('OSS_CB_ERR_INVALID_CALLBACK_PARAM: The callback parameter is invalid: A callback variable name must be lower case, start with x: and use a-z 0-9 _ - . only.')
    // Each command frames its errors its own way; the message itself is one.
    expect(uploadErr).toBe(`oss-callback upload: ${sendErr}\n`)
  })
})
