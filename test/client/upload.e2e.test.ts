import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CALLBACK_FAILURE_MESSAGES } from '../../src/sim/callback-dispatch.js'
import { ROOT } from '../helpers/process.js'
import { aliOssClient, startFakeReceiver, startStack, type Stack } from '../sim/stack.js'

// End to end across real processes on 127.0.0.1: the client is `node dist/cli.js upload`
// (built by the global setup), the simulator and the receiver listen on free ports.

// The slow-receiver case uses its own simulator with a short callback timeout (injectable for
// tests); everything else meets OSS's 5 s, so a loaded machine cannot turn a success into a 203.
const SHORT_CALLBACK_TIMEOUT_MS = 1000
const BUCKET = 'e2e-bucket'

let stack: Stack
let slowStack: Stack
let dir: string
let small: string
let large: string
const largeBytes = Buffer.alloc(350 * 1024)

beforeAll(async () => {
  stack = await startStack()
  slowStack = await startStack({ callbackTimeoutMs: SHORT_CALLBACK_TIMEOUT_MS })
  dir = await mkdtemp(join(tmpdir(), 'oss-cb-e2e-'))
  small = join(dir, '小 文件+1.txt')
  await writeFile(small, 'hello, oss\n')
  for (let i = 0; i < largeBytes.length; i++) largeBytes[i] = (i * 31 + (i >> 10)) & 0xff
  large = join(dir, 'large.bin')
  await writeFile(large, largeBytes)
})
afterAll(async () => {
  await stack?.close()
  await slowStack?.close()
  await rm(dir, { recursive: true, force: true })
})

interface Run { code: number | null, stdout: string, stderr: string }

function cli (args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    // execFile, not the runCli helper: the result is read once the output streams have closed.
    execFile(process.execPath, ['dist/cli.js', 'upload', ...args], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        OSS_ACCESS_KEY_ID: stack.sim.credentials.accessKeyId,
        OSS_ACCESS_KEY_SECRET: stack.sim.credentials.accessKeySecret,
        ...env
      },
      timeout: timeoutMs
    }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : null), stdout, stderr })
    })
  })
}

function target (key: string, callbackUrl = stack.callbackUrl, on = stack): string[] {
  return ['--endpoint', on.sim.origin, '--region', 'cn-hangzhou', '--bucket', BUCKET, '--key', key, '--callback-url', callbackUrl]
}

async function storedContent (key: string, on = stack): Promise<Buffer> {
  const got = await aliOssClient(on.sim, BUCKET).get(key)
  return got.content as Buffer
}

const KEY_CHARS = '目录/中文 名字+plus 1.txt'

describe('upload with a callback answered (exit 0, the relayed JSON on stdout)', { timeout: 60_000 }, () => {
  it('PutObject, JSON body, custom variables, a key with Chinese, spaces and +', async () => {
    const before = stack.received.length
    const run = await cli([small, ...target(KEY_CHARS), '--var', 'uid=42', '--var', 'note=a b&c'])
    expect(run.stderr).toContain(`stored key ${JSON.stringify(KEY_CHARS)} in bucket ${BUCKET} (PutObject, 11 bytes`)
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toEqual({ Status: 'OK', object: KEY_CHARS, size: 11, vars: { 'x:uid': '42', 'x:note': 'a b&c' } })
    expect(stack.received.length).toBe(before + 1)
    const cb = stack.received.at(-1)!
    expect(cb.type).toBe('json')
    expect(cb.system).toMatchObject({ bucket: BUCKET, object: KEY_CHARS, size: 11, operation: 'PutObject', mimeType: 'text/plain' })
    expect((await storedContent(KEY_CHARS)).toString()).toBe('hello, oss\n')
  })

  it('multipart with 4 parts, urlencoded body, V1 signatures, a callback query kept byte for byte', async () => {
    const key = 'multi/大 文件+2.bin'
    const run = await cli([large, ...target(key, `${stack.callbackUrl}?ticket=t%2B1%20x`), '--callback-body-type', 'form', '--var', 'uid=7',
      '--multipart-threshold', '100KiB', '--part-size', '100KiB', '--parallel', '3', '--signature-version', '1'])
    expect(run.stderr).toContain('part 4/4')
    expect(run.stderr).toContain('(CompleteMultipartUpload, 358400 bytes, 4 parts, ETag ')
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toEqual({ Status: 'OK', object: key, size: largeBytes.length, vars: { 'x:uid': '7' } })
    const cb = stack.received.at(-1)!
    expect(cb.type).toBe('form')
    expect(cb.query).toBe('ticket=t%2B1%20x')
    expect(cb.system).toMatchObject({ object: key, size: largeBytes.length, operation: 'CompleteMultipartUpload' })
    expect((await storedContent(key)).equals(largeBytes)).toBe(true)
  })

  it('PostObject with a custom template, as a browser would', async () => {
    const key = 'post/表单 a+b.bin'
    const run = await cli([large, ...target(key), '--post', '--content-type', 'application/x-demo',
      '--callback-body', '{"k":${object},"s":${size},"m":${mimeType},"who":${x:who},"op":${operation}}', '--var', 'who=Zhang San'])
    expect(run.code).toBe(0)
    // The stack's receiver answers with the system fields it found: this template names them otherwise.
    expect(JSON.parse(run.stdout)).toEqual({ Status: 'OK', vars: {} })
    const cb = stack.received.at(-1)!
    expect({ ...cb.fields }).toEqual({ k: key, s: largeBytes.length, m: 'application/x-demo', who: 'Zhang San', op: 'PostObject' })
    expect((await storedContent(key)).equals(largeBytes)).toBe(true)
  })
})

async function closedPortUrl (): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}/cb`
}

describe('callback failures: 203, the object stored, exit 2', { timeout: 60_000 }, () => {
  async function expectStoredButFailed (run: Run, key: string, reason: string, content: Buffer, on = stack): Promise<void> {
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(new RegExp(`oss-callback: object stored, callback failed: ${reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ` +
      `\\(CallbackFailed 0007-00000203; key ${JSON.stringify(key).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} in bucket ${BUCKET}, ETag [0-9A-F]{32}(-\\d+)?, request [0-9A-F]+\\)`))
    expect(run.code).toBe(2)
    expect((await storedContent(key, on)).equals(content)).toBe(true)
    const head = await aliOssClient(on.sim, BUCKET).head(key)
    expect((head.res.headers as Record<string, string>)['content-length']).toBe(String(content.length))
  }

  it('a closed port', async () => {
    const key = 'fail/closed 端口+.txt'
    const run = await cli([small, ...target(key, await closedPortUrl())])
    await expectStoredButFailed(run, key, CALLBACK_FAILURE_MESSAGES.connect, Buffer.from('hello, oss\n'))
  })

  it('a 301 redirect (never followed), through a multipart upload', async () => {
    const receiver = await startFakeReceiver((_req, res) => { res.writeHead(301, { location: stack.callbackUrl }); res.end() })
    try {
      const key = 'fail/redirect.bin'
      const run = await cli([large, ...target(key, receiver.url), '--multipart-threshold', '100KiB', '--part-size', '100KiB'])
      await expectStoredButFailed(run, key, CALLBACK_FAILURE_MESSAGES.status(301), largeBytes)
      expect(receiver.requests).toBe(1)
    } finally {
      await receiver.close()
    }
  })

  it('a reply that is not JSON, through PostObject', async () => {
    const receiver = await startFakeReceiver((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }); res.end('OK') })
    try {
      const key = 'fail/not json.txt'
      const run = await cli([small, ...target(key, receiver.url), '--post'])
      await expectStoredButFailed(run, key, CALLBACK_FAILURE_MESSAGES.notJson, Buffer.from('hello, oss\n'))
    } finally {
      await receiver.close()
    }
  })

  it('a reply without Content-Length', async () => {
    const receiver = await startFakeReceiver((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"Status":')
      res.end('"OK"}')
    })
    try {
      const key = 'fail/chunked.txt'
      const run = await cli([small, ...target(key, receiver.url)])
      await expectStoredButFailed(run, key, CALLBACK_FAILURE_MESSAGES.length, Buffer.from('hello, oss\n'))
    } finally {
      await receiver.close()
    }
  })

  it('a receiver slower than the callback timeout', async () => {
    const receiver = await startFakeReceiver((_req, res) => {
      setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"late":true}') }, SHORT_CALLBACK_TIMEOUT_MS + 1500)
    })
    try {
      const key = 'fail/slow.txt'
      const run = await cli([small, ...target(key, receiver.url, slowStack)])
      const address = new URL(receiver.url).host
      await expectStoredButFailed(run, key, CALLBACK_FAILURE_MESSAGES.timeout(address, SHORT_CALLBACK_TIMEOUT_MS), Buffer.from('hello, oss\n'), slowStack)
    } finally {
      await receiver.close()
    }
  })
})

describe('other failures: exit 1', { timeout: 60_000 }, () => {
  it('a wrong secret gives OSS error code and nothing stored', async () => {
    const key = 'refused/wrong-secret.txt'
    const run = await cli([small, ...target(key)], { OSS_ACCESS_KEY_SECRET: 'not-the-secret' })
    expect(run.code).toBe(1)
    expect(run.stdout).toBe('')
    expect(run.stderr).toMatch(/oss-callback: upload failed: SignatureDoesNotMatch: .+ \(PutObject, HTTP 403; key "refused\/wrong-secret.txt" in bucket e2e-bucket, request [0-9A-F]+\)\n$/)
    await expect(aliOssClient(stack.sim, BUCKET).head(key)).rejects.toMatchObject({ status: 404 })
  })

  it('a refusal that comes while the body is still being sent (wrong secret, body held back) exits at once', async () => {
    // A loaded machine made this a race: the 403 came before the client had sent its small body.
    // The relay makes it certain: it passes the request head and then reads nothing more.
    const relay = await startHeadOnlyRelay(stack.sim.port)
    const big = join(dir, 'held-back.bin')
    await writeFile(big, Buffer.alloc(32 * 1024 * 1024, 7))
    try {
      const key = 'refused/held-back.bin'
      const run = await cli([big, '--endpoint', relay.origin, '--region', 'cn-hangzhou', '--bucket', BUCKET, '--key', key, '--callback-url', stack.callbackUrl],
        { OSS_ACCESS_KEY_SECRET: 'not-the-secret' }, 20_000)
      expect(run.code).toBe(1)
      expect(run.stdout).toBe('')
      expect(run.stderr).toMatch(/\noss-callback: upload failed: SignatureDoesNotMatch: .+ \(PutObject, HTTP 403; key "refused\/held-back.bin" in bucket e2e-bucket, request [0-9A-F]+\)\n$/)
      expect(relay.headsSeen()).toBe(1)
      await expect(aliOssClient(stack.sim, BUCKET).head(key)).rejects.toMatchObject({ status: 404 })
    } finally {
      await relay.close()
    }
  })

  it('a usage error names the problem', async () => {
    const run = await cli([small, '--endpoint', stack.sim.origin, '--bucket', BUCKET, '--callback-url', stack.callbackUrl])
    expect(run.code).toBe(1)
    expect(run.stdout).toBe('')
    expect(run.stderr).toBe('oss-callback upload: OSS_CB_ERR_INVALID_OPTION: Invalid option: region: required for an endpoint that does not name one (give e.g. cn-hangzhou); see oss-callback upload --help\n')
  })
})

/**
 * A TCP relay to the simulator that forwards each connection's request head and then
 * stops reading from the client, so an upload body stays half-sent (TCP back-pressure).
 */
async function startHeadOnlyRelay (targetPort: number): Promise<{ origin: string, headsSeen: () => number, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  let heads = 0
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    sockets.add(client).add(upstream)
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      heads++
      upstream.write(head.subarray(0, end + 4))
      client.off('data', onData)
      client.pause()
    }
    client.on('data', onData)
    // When the simulator has answered and closed, the answer is passed on and the client's side only
    // half-closed: destroying it with the body still unread would send a reset that can overtake the
    // answer (the client then read EPIPE instead of the 403). close() destroys what is left.
    upstream.pipe(client)
    const drop = (): void => { client.destroy(); upstream.destroy() }
    client.on('close', drop).on('error', drop)
    upstream.on('error', drop)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    origin: `http://127.0.0.1:${port}`,
    headsSeen: () => heads,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
