import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest'
import { runUploadCommand } from '../../src/client/command.js'
import { upload } from '../../src/client/upload.js'
import type { UploadOptions } from '../../src/client/options.js'
import { parseOssErrorXml } from '../../src/client/result.js'
import { ossErrorXml, startFakeOss, type FakeOss } from './fake-oss.js'

let dir: string
let small: string
let large: string
let fake: FakeOss | undefined

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oss-cb-client-'))
  small = join(dir, 'hello.txt')
  await writeFile(small, 'hello, oss\n')
  large = join(dir, 'big.bin')
  await writeFile(large, Buffer.alloc(350 * 1024, 7))
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })
afterEach(async () => {
  await fake?.close()
  fake = undefined
})

function options (endpoint: string, extra: Partial<UploadOptions> = {}): UploadOptions {
  return {
    file: small,
    endpoint,
    bucket: 'demo-bucket',
    region: 'cn-hangzhou',
    accessKeyId: 'ak',
    accessKeySecret: 'sk',
    callback: { url: 'http://127.0.0.1:9/cb', vars: { 'x:uid': '42' } },
    ...extra
  }
}

const decodeB64Json = (v: unknown): unknown => JSON.parse(Buffer.from(String(v), 'base64').toString('utf8'))

function captureIo (): { io: Parameters<typeof runUploadCommand>[1], out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return {
    io: {
      env: { OSS_ACCESS_KEY_ID: 'ak', OSS_ACCESS_KEY_SECRET: 'sk' },
      stdout: { write: (c: string) => { out += c; return true } },
      stderr: { write: (c: string) => { err += c; return true }, isTTY: false }
    },
    out: () => out,
    err: () => err
  }
}

describe('PutObject through ali-oss', () => {
  it('sends the callback headers once, virtual-hosted, and returns the relayed reply verbatim', async () => {
    fake = await startFakeOss((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', etag: '"5EB63BBBE01EEED093CB22BB8F5ACDC3"', 'x-oss-request-id': 'R-1', 'x-oss-hash-crc64ecma': '123' })
      res.end('{"ok": true,  "spaces":"kept"}')
    })
    const result = await upload(options(fake.endpoint))
    expect(result).toEqual({
      outcome: 'callback-ok', exitCode: 0, httpStatus: 200, operation: 'PutObject', bucket: 'demo-bucket', key: 'hello.txt',
      sizeBytes: 11, etag: '5EB63BBBE01EEED093CB22BB8F5ACDC3', crc64: '123', requestId: 'R-1', reply: '{"ok": true,  "spaces":"kept"}'
    })
    expect(fake.seen).toHaveLength(1)
    const req = fake.seen[0]!
    expect(req.method).toBe('PUT')
    expect(req.url).toBe('/hello.txt')
    expect(req.headers.host).toBe('demo-bucket.oss-cn-hangzhou.aliyuncs.com')
    expect(req.body.toString()).toBe('hello, oss\n')
    expect(req.headers.authorization).toMatch(/^OSS4-HMAC-SHA256 Credential=ak\/\d{8}\/cn-hangzhou\/oss\/aliyun_v4_request,Signature=[0-9a-f]{64}$/)
    expect(decodeB64Json(req.headers['x-oss-callback'])).toEqual({
      callbackUrl: 'http://127.0.0.1:9/cb',
      callbackBody: '{"bucket":${bucket},"object":${object},"etag":${etag},"size":${size},"mimeType":${mimeType},"crc64":${crc64},"contentMd5":${contentMd5},"operation":${operation},"reqId":${reqId},"x:uid":${x:uid}}',
      callbackBodyType: 'application/json'
    })
    expect(decodeB64Json(req.headers['x-oss-callback-var'])).toEqual({ 'x:uid': '42' })
  })

  it('addresses a localhost endpoint path style, where <bucket>.localhost would not resolve', async () => {
    fake = await startFakeOss((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}') })
    const endpoint = `http://localhost:${fake.port}`
    expect(await upload(options(endpoint, { key: 'a b.txt' }))).toMatchObject({ outcome: 'callback-ok' })
    expect(await upload(options(endpoint, { post: true }))).toMatchObject({ outcome: 'callback-ok' })
    expect(fake.seen.map((r) => `${r.method} ${r.headers.host} ${r.url}`)).toEqual([
      `PUT localhost:${fake.port} /demo-bucket/a%20b.txt`, `POST localhost:${fake.port} /demo-bucket`
    ])
  })

  it('signs V1 on request', async () => {
    fake = await startFakeOss((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}') })
    await upload(options(fake.endpoint, { signatureVersion: 1 }))
    expect(fake.seen[0]!.headers.authorization).toMatch(/^OSS ak:[A-Za-z0-9+/]{27}=$/)
  })

  it('reports a 203 as stored with the callback failed: exit 2, OSS reason, key and ETag, nothing on stdout', async () => {
    fake = await startFakeOss((_req, res) => {
      res.writeHead(203, { 'content-type': 'application/xml', etag: '"AAA0"', 'x-oss-request-id': 'R-203' })
      res.end(ossErrorXml('CallbackFailed', 'Error status : 301.', 'R-203', '0007-00000203'))
    })
    const result = await upload(options(fake.endpoint))
    expect(result).toEqual({
      outcome: 'callback-failed', exitCode: 2, httpStatus: 203, operation: 'PutObject', bucket: 'demo-bucket', key: 'hello.txt',
      sizeBytes: 11, etag: 'AAA0', requestId: 'R-203', ossCode: 'CallbackFailed', reason: 'Error status : 301.', ec: '0007-00000203'
    })

    const { io, out, err } = captureIo()
    const code = await runUploadCommand([small, '--endpoint', fake.endpoint, '--bucket', 'demo-bucket', '--region', 'cn-hangzhou',
      '--callback-url', 'http://127.0.0.1:9/cb', '--key', 'dir/ü file+1.txt'], io)
    expect(code).toBe(2)
    expect(out()).toBe('')
    expect(err()).toContain('oss-callback: object stored, callback failed: Error status : 301. (CallbackFailed 0007-00000203; key "dir/ü file+1.txt" in bucket demo-bucket, ETag AAA0, request R-203). OSS does not retry the callback.\n')
  })

  it('reports any other OSS error with its code and exits 1', async () => {
    fake = await startFakeOss((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/xml', 'x-oss-request-id': 'R-403' })
      res.end(ossErrorXml('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.', 'R-403'))
    })
    const { io, out, err } = captureIo()
    const code = await runUploadCommand([small, '--endpoint', fake.endpoint, '--bucket', 'demo-bucket', '--region', 'cn-hangzhou', '--callback-url', 'http://127.0.0.1:9/cb'], io)
    expect(code).toBe(1)
    expect(out()).toBe('')
    expect(err()).toContain('oss-callback: upload failed: SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. (PutObject, HTTP 403; key "hello.txt" in bucket demo-bucket, request R-403)\n')
  })

  it('exits 1 without an OSS code when nothing answers', async () => {
    // urllib warns on the console when a streamed request meets a refused connection; the CLI filters it.
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    onTestFinished(() => { warn.mockRestore() })
    fake = await startFakeOss((_req, res) => { res.end() })
    const port = fake.port
    await fake.close()
    fake = undefined
    const result = await upload(options(`http://127.0.0.1:${port}`))
    expect(result.outcome).toBe('failed')
    expect(result.exitCode).toBe(1)
    expect(result).not.toHaveProperty('ossCode')
    expect(result).not.toHaveProperty('httpStatus')
    expect((result as { message: string }).message).toBe(`connect ECONNREFUSED 127.0.0.1:${port}`)
  })

  it('keeps urllib\'s console warnings out of the CLI output and says what failed in one line', async () => {
    fake = await startFakeOss((_req, res) => { res.end() })
    const port = fake.port
    await fake.close()
    fake = undefined
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    onTestFinished(() => { warn.mockRestore() })
    const { io, out, err } = captureIo()
    const code = await runUploadCommand([small, '--endpoint', `http://127.0.0.1:${port}`, '--bucket', 'demo-bucket', '--region', 'cn-hangzhou', '--callback-url', 'http://127.0.0.1:9/cb'], io)
    expect(code).toBe(1)
    expect(out()).toBe('')
    expect(err().split('\n').filter((l) => l.startsWith('oss-callback'))).toEqual([
      `oss-callback: upload failed: connect ECONNREFUSED 127.0.0.1:${port} (PutObject, no HTTP answer; key "hello.txt" in bucket demo-bucket)`
    ])
    expect(warn.mock.calls.filter((c) => String(c[0]).startsWith('[urllib:warn]'))).toEqual([])
    expect(console.warn).toBe(warn)
  })

  it('does not pass off ali-oss\'s guess for a body-less error as an OSS code', async () => {
    fake = await startFakeOss((_req, res) => { res.writeHead(404); res.end() })
    const result = await upload(options(fake.endpoint))
    expect(result).toEqual({
      outcome: 'failed', exitCode: 1, operation: 'PutObject', bucket: 'demo-bucket', key: 'hello.txt', httpStatus: 404,
      message: 'OSS answered HTTP 404 with no error body'
    })
  })
})

describe('multipart upload through ali-oss', () => {
  function multipartOss (failPart?: number): Parameters<typeof startFakeOss>[0] {
    let inFlight = 0
    let maxInFlight = 0
    const handler: Parameters<typeof startFakeOss>[0] & { maxInFlight?: () => number } = async (req, res) => {
      const url = new URL(req.url, 'http://x')
      if (req.method === 'POST' && url.searchParams.has('uploads')) {
        res.writeHead(200, { 'content-type': 'application/xml' })
        res.end('<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>demo-bucket</Bucket><Key>big.bin</Key><UploadId>UP1</UploadId></InitiateMultipartUploadResult>')
      } else if (req.method === 'PUT' && url.searchParams.has('partNumber')) {
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        await new Promise((resolve) => setTimeout(resolve, 50))
        inFlight--
        const n = Number(url.searchParams.get('partNumber'))
        if (n === failPart) {
          res.writeHead(400, { 'content-type': 'application/xml' })
          res.end(ossErrorXml('InvalidArgument', 'bad part'))
          return
        }
        res.writeHead(200, { etag: `"P${n}"` })
        res.end()
      } else if (req.method === 'POST' && url.searchParams.has('uploadId')) {
        res.writeHead(200, { 'content-type': 'application/json', etag: '"MULTI-3"' })
        res.end(JSON.stringify({ maxInFlight }))
      } else if (req.method === 'DELETE') {
        res.writeHead(204)
        res.end()
      } else {
        res.writeHead(400)
        res.end()
      }
    }
    return handler
  }

  it('uploads parts in parallel and puts the callback on CompleteMultipartUpload alone', async () => {
    fake = await startFakeOss(multipartOss())
    const progress: string[] = []
    const result = await upload(options(fake.endpoint, { file: large, multipartThresholdBytes: 100 * 1024, partSizeBytes: 100 * 1024, parallelParts: 3 }),
      { onProgress: (p) => progress.push(`${p.loadedBytes}/${p.totalBytes} ${p.partsDone}/${p.partsTotal}`) })
    expect(result).toMatchObject({ outcome: 'callback-ok', operation: 'CompleteMultipartUpload', parts: 4, sizeBytes: 350 * 1024, etag: 'MULTI-3' })
    const { maxInFlight } = JSON.parse((result as { reply: string }).reply) as { maxInFlight: number }
    expect(maxInFlight).toBeGreaterThan(1)
    expect(maxInFlight).toBeLessThanOrEqual(3)
    const withCallback = fake.seen.filter((r) => r.headers['x-oss-callback'] !== undefined)
    expect(withCallback.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /big.bin?uploadId=UP1'])
    const complete = withCallback[0]!.body.toString()
    for (const n of [1, 2, 3, 4]) expect(complete).toContain(`<PartNumber>${n}</PartNumber>`)
    const parts = fake.seen.filter((r) => r.method === 'PUT')
    expect(parts.map((r) => r.body.length).sort((a, b) => a - b)).toEqual([50 * 1024, 100 * 1024, 100 * 1024, 100 * 1024])
    expect(progress[0]).toBe('0/358400 0/4')
    expect(progress.at(-1)).toBe('358400/358400 4/4')
  })

  it('stops starting parts and aborts the upload when cancelled', async () => {
    fake = await startFakeOss(multipartOss())
    const controller = new AbortController()
    const result = await upload(options(fake.endpoint, { file: large, multipartThresholdBytes: 100 * 1024, partSizeBytes: 100 * 1024, parallelParts: 1 }),
      { signal: controller.signal, onProgress: (p) => { if (p.partsDone === 1) controller.abort() } })
    expect(result).toEqual({ outcome: 'failed', exitCode: 1, operation: 'UploadPart', bucket: 'demo-bucket', key: 'big.bin', message: 'cancelled; nothing stored' })
    expect(fake.seen.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /big.bin?uploads=', 'PUT /big.bin?partNumber=1&uploadId=UP1', 'DELETE /big.bin?uploadId=UP1'])
  })

  it('aborts the upload when a part fails and reports the part error', async () => {
    fake = await startFakeOss(multipartOss(2))
    const result = await upload(options(fake.endpoint, { file: large, multipartThresholdBytes: 100 * 1024, partSizeBytes: 100 * 1024, parallelParts: 1 }))
    expect(result).toMatchObject({ outcome: 'failed', exitCode: 1, operation: 'UploadPart', httpStatus: 400, ossCode: 'InvalidArgument' })
    expect(fake.seen.map((r) => `${r.method} ${r.url.replace(/\?.*/, '')}`).at(-1)).toBe('DELETE /big.bin')
    expect(fake.seen.some((r) => r.url.includes('partNumber=3'))).toBe(false)
  })
})

describe('PostObject form', () => {
  it('posts a signed form with file last, policy pinning key, size and callback; 203 is exit 2', async () => {
    fake = await startFakeOss((_req, res) => {
      res.writeHead(203, { 'content-type': 'application/xml', etag: '"E1"', 'x-oss-request-id': 'R-P' })
      res.end(ossErrorXml('CallbackFailed', 'Response body is not valid json format.', 'R-P', '0007-00000203'))
    })
    const now = new Date('2026-11-26T06:00:00Z')
    const result = await upload(options(fake.endpoint, { post: true, key: '目录/a b+c.txt' }), { now: () => now })
    expect(result).toEqual({
      outcome: 'callback-failed', exitCode: 2, httpStatus: 203, operation: 'PostObject', bucket: 'demo-bucket', key: '目录/a b+c.txt',
      sizeBytes: 11, etag: 'E1', requestId: 'R-P', ossCode: 'CallbackFailed', reason: 'Response body is not valid json format.', ec: '0007-00000203'
    })
    const req = fake.seen[0]!
    expect(req.method).toBe('POST')
    expect(req.url).toBe('/demo-bucket')
    const form = await new Response(new Uint8Array(req.body), { headers: { 'content-type': String(req.headers['content-type']) } }).formData()
    const names = [...form.keys()]
    expect(names.at(-1)).toBe('file')
    expect(form.get('key')).toBe('目录/a b+c.txt')
    expect(form.get('x:uid')).toBe('42')
    expect(form.get('x-oss-date')).toBe('20261126T060000Z')
    const policy = decodeB64Json(form.get('policy')) as { expiration: string, conditions: unknown[] }
    expect(policy.expiration).toBe('2026-11-26T06:15:00.000Z')
    expect(policy.conditions).toEqual(expect.arrayContaining([
      { bucket: 'demo-bucket' }, ['eq', '$key', '目录/a b+c.txt'], ['content-length-range', 11, 11],
      { callback: form.get('callback') }, ['eq', '$x:uid', '42'], { 'x-oss-credential': 'ak/20261126/cn-hangzhou/oss/aliyun_v4_request' },
      ['eq', '$content-type', 'application/octet-stream'], { success_action_status: '200' }
    ]))
    expect(form.get('success_action_status')).toBe('200')
    expect(form.get('Content-Type')).toBe('application/octet-stream')
    expect(await (form.get('file') as Blob).text()).toBe('hello, oss\n')
  })
})

describe('STS credentials and local failures', () => {
  it('sends the security token with PutObject, and in the PostObject form and policy', async () => {
    fake = await startFakeOss((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}') })
    await upload(options(fake.endpoint, { securityToken: 'sts-token' }))
    expect(fake.seen[0]!.headers['x-oss-security-token']).toBe('sts-token')
    await upload(options(fake.endpoint, { securityToken: 'sts-token', post: true }))
    const req = fake.seen[1]!
    const form = await new Response(new Uint8Array(req.body), { headers: { 'content-type': String(req.headers['content-type']) } }).formData()
    expect(form.get('x-oss-security-token')).toBe('sts-token')
    expect((decodeB64Json(form.get('policy')) as { conditions: unknown[] }).conditions).toContainEqual({ 'x-oss-security-token': 'sts-token' })
  })

  it('sends nothing when cancelled before it starts', async () => {
    fake = await startFakeOss((_req, res) => { res.end() })
    const result = await upload(options(fake.endpoint, { post: true }), { signal: AbortSignal.abort() })
    expect(result).toEqual({ outcome: 'failed', exitCode: 1, operation: 'PostObject', bucket: 'demo-bucket', key: 'hello.txt', message: 'cancelled; nothing stored' })
    expect(fake.seen).toHaveLength(0)
  })

  it('reports a file it cannot read as a failure before sending anything', async () => {
    fake = await startFakeOss((_req, res) => { res.end() })
    const result = await upload(options(fake.endpoint, { file: join(dir, 'missing.txt') }))
    expect(result).toEqual({ outcome: 'failed', exitCode: 1, bucket: 'demo-bucket', key: 'missing.txt', message: `cannot read ${join(dir, 'missing.txt')}: ENOENT` })
    expect(fake.seen).toHaveLength(0)
  })
})

describe('OSS error XML', () => {
  it('reads the fields and refuses what is not an OSS error', () => {
    expect(parseOssErrorXml(ossErrorXml('NoSuchKey', 'The specified key does not exist.', 'R9', '0026-00000001'))).toEqual({
      code: 'NoSuchKey', message: 'The specified key does not exist.', requestId: 'R9', hostId: 'bucket.oss-cn-hangzhou.aliyuncs.com', ec: '0026-00000001'
    })
    expect(parseOssErrorXml('{"not":"xml"}')).toBeUndefined()
    expect(parseOssErrorXml('<Other/>')).toBeUndefined()
  })
})
