import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { aliOssClient, startFakeReceiver, startStack, xmlError, type Stack } from './stack.js'

// The simulator gives up on a callback reply after 300 ms here instead of OSS's 5 s, so that a
// receiver that never answers fails fast; the 5 s default is checked separately.
const TIMEOUT_MS = 300

let stack: Stack
beforeAll(async () => { stack = await startStack({ callbackTimeoutMs: TIMEOUT_MS }) })
afterAll(async () => { await stack.close() })

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

async function fake (handle: Parameters<typeof startFakeReceiver>[0]): Promise<Awaited<ReturnType<typeof startFakeReceiver>>> {
  const f = await startFakeReceiver(handle)
  cleanups.push(f.close)
  return f
}

interface Failed { status: number, message: string, code: string }

/** Uploads with ali-oss and returns the 203 it gets, checking that the object is stored anyway. */
async function uploadExpecting203 (callbackUrl: string, key: string): Promise<{ message: string }> {
  const client = aliOssClient(stack.sim)
  const content = Buffer.from(`object ${key}`)
  const err = await client.put(key, content, { callback: { url: callbackUrl, body: 'object=${object}' } } as never).then(
    () => { throw new Error('expected a 203') },
    (e: unknown) => e as Failed
  )
  expect(err.status).toBe(203)
  expect(err.code).toBe('CallbackFailed')
  // The object is stored although the callback failed.
  const got = await client.get(key)
  expect(got.content.toString()).toBe(`object ${key}`)
  return { message: err.message }
}

describe('callback failures answer 203 CallbackFailed with OSS message, object stored', () => {
  it('a closed port', async () => {
    const closed = await startFakeReceiver((_req, res) => res.end())
    await closed.close()
    const { message } = await uploadExpecting203(closed.url, 'fail/closed.txt')
    expect(message).toBe('Error status : -1. OSS can not connect to your callbackUrl, please check it.')
  })

  it('a 301 redirect, not followed', async () => {
    const target = await fake((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{}') })
    const redirect = await fake((_req, res) => { res.writeHead(301, { location: target.url }).end() })
    const { message } = await uploadExpecting203(redirect.url, 'fail/301.txt')
    expect(message).toBe('Error status : 301.')
    expect(target.requests).toBe(0)
  })

  it.each([[204], [201], [500]])('status %i', async (status) => {
    const f = await fake((_req, res) => { res.writeHead(status, { 'content-type': 'application/json' }).end() })
    const { message } = await uploadExpecting203(f.url, `fail/status-${status}.txt`)
    expect(message).toBe(`Error status : ${status}.`)
  })

  it('a reply that is not JSON', async () => {
    const f = await fake((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }).end('OK') })
    const { message } = await uploadExpecting203(f.url, 'fail/not-json.txt')
    expect(message).toBe('Response body is not valid json format.')
  })

  it('JSON behind a UTF-8 BOM', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')])
    const f = await fake((_req, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) }).end(body) })
    const { message } = await uploadExpecting203(f.url, 'fail/bom.txt')
    expect(message).toBe('Response body is not valid json format.')
  })

  it('a reply without Content-Length (chunked)', async () => {
    const f = await fake((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"a":')
      res.end('1}')
    })
    const { message } = await uploadExpecting203(f.url, 'fail/chunked.txt')
    expect(message).toBe('Error Status : 400.User server return too long content-length value')
  })

  it('a reply over 1 MB', async () => {
    const body = `{"a":"${'x'.repeat(1024 * 1024)}"}`
    const f = await fake((_req, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) }).end(body) })
    const { message } = await uploadExpecting203(f.url, 'fail/huge.txt')
    expect(message).toBe('Error Status : 400.User server return too long content-length value')
  })

  it('a receiver that never answers: reply timeout', async () => {
    const f = await fake(() => { /* never answers */ })
    const started = Date.now()
    const { message } = await uploadExpecting203(f.url, 'fail/slow.txt')
    const port = new URL(f.url).port
    expect(message).toBe(`error status:-1 127.0.0.1:${port} reply timeout, cost: ${TIMEOUT_MS} MS, timeout: ${TIMEOUT_MS} MS`)
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS)
  })

  it('a receiver that sends headers then stalls the body', async () => {
    const f = await fake((_req, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': '10' }); res.write('{"a"') })
    const { message } = await uploadExpecting203(f.url, 'fail/stall.txt')
    expect(message).toMatch(/^error status:-1 127\.0\.0\.1:\d+ reply timeout, cost: 300 MS, timeout: 300 MS$/)
  })

  it('the 203 body is OSS XML with EC 0007-00000203 and the upload headers', async () => {
    const closed = await startFakeReceiver((_req, res) => res.end())
    await closed.close()
    const { callback } = (await import('../../src/protocol/callback-param.js')).encodeCallbackParam({ callbackUrl: closed.url, callbackBody: 'a=${object}' })
    const { rawRequest, v1Headers } = await import('./stack.js')
    const headers = await v1Headers(stack.sim, 'PUT', '/examplebucket/fail/xml.txt', { 'x-oss-callback': callback })
    const reply = await rawRequest(Number(new URL(stack.sim.origin).port), 'PUT', '/examplebucket/fail/xml.txt', headers, 'abc')
    expect(reply.status).toBe(203)
    expect(reply.headers).toMatchObject({ etag: '"900150983CD24FB0D6963F7D28E17F72"', 'x-oss-hash-crc64ecma': '3231342946509354535', 'x-oss-ec': '0007-00000203', 'content-type': 'application/xml' })
    expect(xmlError(reply.text)).toEqual({
      Code: 'CallbackFailed',
      Message: 'Error status : -1. OSS can not connect to your callbackUrl, please check it.',
      RequestId: reply.headers['x-oss-request-id'],
      HostId: 'examplebucket.oss-cn-hangzhou.aliyuncs.com',
      EC: '0007-00000203'
    })
  })
})

describe('several callback URLs', () => {
  it('tries them in order until one succeeds', async () => {
    const bad = await fake((_req, res) => { res.writeHead(500).end() })
    const client = aliOssClient(stack.sim)
    const result = await client.put('multi-url.txt', Buffer.from('x'), {
      callback: { url: `${bad.url};${stack.callbackUrl}`, body: 'object=${object}' }
    } as never) as unknown as { data: unknown }
    expect(bad.requests).toBe(1)
    expect(result.data).toEqual({ Status: 'OK', object: 'multi-url.txt', vars: {} })
  })

  it('reports the last failure when all fail', async () => {
    const a = await fake((_req, res) => { res.writeHead(500).end() })
    const b = await fake((_req, res) => { res.writeHead(404).end() })
    const { message } = await uploadExpecting203(`${a.url};${b.url}`, 'fail/all-urls.txt')
    expect(message).toBe('Error status : 404.')
    expect([a.requests, b.requests]).toEqual([1, 1])
  })
})

describe('what the callback request looks like', () => {
  it('carries OSS headers, signs path and query, and closes the connection', async () => {
    let seen: { url?: string, headers: Record<string, unknown>, body: string } | undefined
    const f = await fake((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        seen = { url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}')
      })
    })
    await aliOssClient(stack.sim).put('hdr/a b.txt', Buffer.from('x'), {
      // ali-oss passes the URL through encodeURI, so an already encoded %20 would become %2520.
      callback: { url: `${f.url}?id=1&v=a b`, host: 'callback.example.com', body: 'object=${object}' }
    } as never)
    const { createHash } = await import('node:crypto')
    expect(seen?.url).toBe('/cb?id=1&v=a%20b')
    expect(seen?.body).toBe('object=hdr%2Fa%20b.txt')
    expect(seen?.headers).toMatchObject({
      host: 'callback.example.com',
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(seen?.body.length),
      'content-md5': createHash('md5').update(seen?.body ?? '').digest('base64'),
      'user-agent': 'aliyun-oss-callback',
      'x-oss-pub-key-url': Buffer.from(stack.sim.publicKeyUrl).toString('base64'),
      'x-oss-bucket': 'examplebucket',
      'x-oss-signature-version': '1.0',
      'x-oss-tag': 'CALLBACK',
      connection: 'close'
    })
    expect(seen?.headers.date).toMatch(/ GMT$/)
    expect(seen?.headers.authorization).toMatch(/^[A-Za-z0-9+/]{86}==$/)
    // Signed over path, query and body with the key served at the advertised URL.
    const { parsePublicKeyPem, verifyWithNodeCrypto } = await import('../../src/protocol/signature.js')
    const { buildStringToSign, splitRequestTarget } = await import('../../src/protocol/string-to-sign.js')
    const pem = await (await fetch(stack.sim.publicKeyUrl)).text()
    const data = buildStringToSign(splitRequestTarget(seen?.url ?? ''), Buffer.from(seen?.body ?? ''))
    expect(verifyWithNodeCrypto(parsePublicKeyPem(pem), data, Buffer.from(String(seen?.headers.authorization), 'base64'))).toBe(true)
  })
})
