import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeCallbackParam } from '../../src/protocol/callback-param.js'
import { crc64 } from '../../src/protocol/crc64.js'
import { signV1, signV4, v4SigningKey, v4DateTime } from '../../src/protocol/oss-signing.js'
import { aliOssClient, rawRequest, startStack, v1Headers, xmlError, type Stack } from './stack.js'

let stack: Stack
beforeAll(async () => { stack = await startStack() })
afterAll(async () => { await stack.close() })

const port = (): number => Number(new URL(stack.sim.origin).port)

interface CallbackResult { data?: unknown, res: { status: number, headers: Record<string, string> } }

describe('ali-oss put with a callback, through the real receiver', () => {
  it.each([
    ['dir/中文 a+b.txt'],
    ['plain.txt'],
    ['spaces in name/and+plus/%percent.bin']
  ])('urlencoded body, key %j: relayed reply, values as OSS sends them', async (key) => {
    const client = aliOssClient(stack.sim)
    const content = Buffer.from(`content of ${key}`)
    const before = stack.received.length
    const result = await client.put(key, content, {
      callback: {
        url: stack.callbackUrl,
        body: 'bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}&crc64=${crc64}&contentMd5=${contentMd5}&operation=${operation}&x:note=${x:note}',
        contentType: 'application/x-www-form-urlencoded',
        customValue: { note: '中文 +/ value' }
      }
    } as never) as unknown as CallbackResult
    const md5 = createHash('md5').update(content).digest()
    expect(result.res.status).toBe(200)
    expect(result.data).toEqual({ Status: 'OK', object: key, size: content.length, vars: { 'x:note': '中文 +/ value' } })
    expect(result.res.headers.etag).toBe(`"${md5.toString('hex').toUpperCase()}"`)
    expect(result.res.headers['x-oss-hash-crc64ecma']).toBe(crc64(content).toString())
    expect(stack.received.length).toBe(before + 1)
    const cb = stack.received.at(-1)
    expect(cb?.system).toMatchObject({
      bucket: 'examplebucket',
      object: key,
      etag: md5.toString('hex').toUpperCase(),
      size: content.length,
      crc64: crc64(content).toString(),
      contentMd5: md5.toString('base64'),
      operation: 'PutObject'
    })
    expect((await client.get(key)).content).toEqual(content)
  })

  it('JSON body: strings quoted, numbers bare, custom variables', async () => {
    const client = aliOssClient(stack.sim)
    const result = await client.put('json/对象 1+1.txt', Buffer.from('{}'), {
      callback: {
        url: stack.callbackUrl,
        body: '{"bucket":${bucket},"object":${object},"size":${size},"mimeType":${mimeType},"x:who":${x:who}}',
        contentType: 'application/json',
        customValue: { who: 'Zoë "quoted"' }
      }
    } as never) as unknown as CallbackResult
    expect(result.data).toEqual({ Status: 'OK', object: 'json/对象 1+1.txt', size: 2, vars: { 'x:who': 'Zoë "quoted"' } })
    const cb = stack.received.at(-1)
    expect(cb?.type).toBe('json')
    expect(cb?.keyUrl).toBe(stack.sim.publicKeyUrl)
    expect(cb?.raw.toString('utf8')).toBe('{"bucket":"examplebucket","object":"json/对象 1+1.txt","size":2,"mimeType":"text/plain","x:who":"Zoë \\"quoted\\""}')
  })

  it('multipart upload with 3 parts: callback on CompleteMultipartUpload, OSS multipart ETag', async () => {
    const client = aliOssClient(stack.sim)
    const partSize = 100 * 1024
    const data = Buffer.alloc(partSize * 2 + 12_345)
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff
    const key = 'multi/大 file+1.bin'
    const result = await client.multipartUpload(key, data, {
      partSize,
      parallel: 2,
      callback: { url: stack.callbackUrl, body: 'object=${object}&size=${size}&etag=${etag}&contentMd5=${contentMd5}&operation=${operation}', contentType: 'application/x-www-form-urlencoded' }
    } as never) as unknown as CallbackResult
    expect(result.data).toEqual({ Status: 'OK', object: key, size: data.length, vars: {} })
    const partMd5s = [data.subarray(0, partSize), data.subarray(partSize, 2 * partSize), data.subarray(2 * partSize)]
      .map((p) => createHash('md5').update(p).digest())
    const etag = `${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex').toUpperCase()}-3`
    const cb = stack.received.at(-1)
    expect(cb?.system).toMatchObject({ object: key, size: data.length, etag, operation: 'CompleteMultipartUpload' })
    expect(cb?.system.contentMd5).toBeUndefined()
    const head = await client.head(key)
    expect(head.res.headers).toMatchObject({ etag: `"${etag}"`, 'x-oss-hash-crc64ecma': crc64(data).toString(), 'x-oss-object-type': 'Multipart' })
    expect((await client.get(key)).content.equals(data)).toBe(true)
  })

  it('multipart upload without a callback answers CompleteMultipartUploadResult XML', async () => {
    const client = aliOssClient(stack.sim)
    const data = Buffer.alloc(100 * 1024 * 3, 7)
    const result = await client.multipartUpload('multi/no-callback.bin', data, { partSize: 100 * 1024 })
    expect(result.res.status).toBe(200)
    expect((await client.get('multi/no-callback.bin')).content.equals(data)).toBe(true)
  })

  it('put, head, get and delete without a callback', async () => {
    const client = aliOssClient(stack.sim)
    await client.put('plain/x.txt', Buffer.from('abc'), { headers: { 'x-oss-meta-color': 'blue' } })
    const head = await client.head('plain/x.txt')
    expect(head.res.headers).toMatchObject({ 'content-length': '3', 'x-oss-meta-color': 'blue', 'content-md5': createHash('md5').update('abc').digest('base64') })
    const part = await client.get('plain/x.txt', { headers: { Range: 'bytes=1-' } })
    expect([part.res.status, part.content.toString()]).toEqual([206, 'bc'])
    const tail = await client.get('plain/x.txt', { headers: { Range: 'bytes=-1' } })
    expect([tail.res.status, tail.content.toString()]).toEqual([206, 'c'])
    await expect(client.get('plain/x.txt', { headers: { Range: 'bytes=5-9' } })).rejects.toMatchObject({ status: 416, code: 'InvalidRange' })
    await client.delete('plain/x.txt')
    await expect(client.get('plain/x.txt')).rejects.toMatchObject({ code: 'NoSuchKey', status: 404 })
  })
})

describe('what ali-oss sends to an IP endpoint', () => {
  it('connects to the IP, sends Host <bucket>.oss-<region>.aliyuncs.com, the path /<key>, x-oss-date and no Date', async () => {
    const { createServer } = await import('node:http')
    const seen: Array<{ url?: string, headers: Record<string, unknown> }> = []
    const server = createServer((req, res) => { seen.push({ url: req.url, headers: req.headers }); req.resume(); res.end() })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const capturePort = (server.address() as { port: number }).port
    const { default: OSS } = await import('ali-oss')
    const client = new OSS({ endpoint: `http://127.0.0.1:${capturePort}`, accessKeyId: 'a', accessKeySecret: 'b', bucket: 'examplebucket', region: 'oss-cn-hangzhou' })
    await client.put('dir/a b.txt', Buffer.from('x')).catch(() => undefined)
    server.close()
    expect(seen[0]?.url).toBe('/dir/a%20b.txt')
    expect(seen[0]?.headers.host).toBe('examplebucket.oss-cn-hangzhou.aliyuncs.com')
    expect(seen[0]?.headers['x-oss-date']).toBeTypeOf('string')
    expect(seen[0]?.headers.date).toBeUndefined()
  })
})

describe('addressing and wire quirks of real clients', () => {
  it('path style with the slashes percent-encoded, as the C SDK sends it', async () => {
    const headers = await v1Headers(stack.sim, 'PUT', '/examplebucket/c sdk/dir/key.txt', { 'content-type': 'text/plain' })
    const put = await rawRequest(port(), 'PUT', '/examplebucket%2Fc%20sdk%2Fdir%2Fkey.txt', headers, 'from the C SDK')
    expect(put.status).toBe(200)
    expect((await aliOssClient(stack.sim).get('c sdk/dir/key.txt')).content.toString()).toBe('from the C SDK')
  })

  it('virtual-hosted style with a host-name endpoint: Host bucket.<endpoint> and an encoded key', async () => {
    const headers = await v1Headers(stack.sim, 'PUT', '/examplebucket/vh/key.txt', { host: 'examplebucket.oss.example.internal' })
    const put = await rawRequest(port(), 'PUT', '/vh%2Fkey.txt', headers, 'virtual')
    expect(put.status).toBe(200)
    expect((await aliOssClient(stack.sim).get('vh/key.txt')).content.toString()).toBe('virtual')
  })

  it('accepts Transfer-Encoding: chunked together with Content-Length (chunked framing wins)', async () => {
    const headers = await v1Headers(stack.sim, 'PUT', '/examplebucket/chunked.txt', { 'content-type': 'text/plain' })
    const head = [`PUT /examplebucket/chunked.txt HTTP/1.1`, `Host: 127.0.0.1:${port()}`, 'Transfer-Encoding: chunked', 'Content-Length: 11',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''].join('\r\n')
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(port(), '127.0.0.1', () => { socket.write(`${head}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`) })
      let text = ''
      socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
      socket.on('end', () => resolve(text))
      socket.on('error', reject)
    })
    expect(reply.startsWith('HTTP/1.1 200')).toBe(true)
    expect((await aliOssClient(stack.sim).get('chunked.txt')).content.toString()).toBe('hello world')
  })

  it('answers Expect: 100-continue with 100 before the body', async () => {
    const headers = await v1Headers(stack.sim, 'PUT', '/examplebucket/continue.txt', { 'content-type': 'text/plain', expect: '100-continue', 'content-length': '8' })
    let continued = false
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: port(), method: 'PUT', path: '/examplebucket/continue.txt', headers, agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
      req.on('continue', () => { continued = true; req.end('continue') })
      req.on('error', reject)
    })
    expect(continued).toBe(true)
    expect(status).toBe(200)
  })

  it('presigned V1 URL with the callback in the query', async () => {
    const { callback } = encodeCallbackParam({ callbackUrl: stack.callbackUrl, callbackBody: 'object=${object}&size=${size}' })
    const expires = String(Math.floor(Date.now() / 1000) + 600)
    const resource = `/examplebucket/presigned.txt?callback=${callback}`
    const signature = signV1(stack.sim.credentials.accessKeySecret, `PUT\n\ntext/plain\n${expires}\n${resource}`)
    const query = `OSSAccessKeyId=${encodeURIComponent(stack.sim.credentials.accessKeyId)}&Expires=${expires}&Signature=${encodeURIComponent(signature)}&callback=${encodeURIComponent(callback)}`
    const reply = await rawRequest(port(), 'PUT', `/examplebucket/presigned.txt?${query}`, { 'content-type': 'text/plain' }, 'signed url')
    expect(reply.status).toBe(200)
    expect(JSON.parse(reply.text)).toEqual({ Status: 'OK', object: 'presigned.txt', size: 10, vars: {} })
  })
})

interface FormOptions {
  fields: Record<string, string>
  file?: Buffer
  filename?: string
  bucket?: string
}

async function postForm (o: FormOptions): Promise<{ status: number, text: string, headers: Headers }> {
  const form = new FormData()
  for (const [k, v] of Object.entries(o.fields)) form.append(k, v)
  if (o.file !== undefined) form.append('file', new Blob([o.file], { type: 'image/png' }), o.filename ?? 'upload.png')
  const res = await fetch(`${stack.sim.origin}/${o.bucket ?? 'examplebucket'}`, { method: 'POST', body: form })
  return { status: res.status, text: await res.text(), headers: res.headers }
}

function v1Form (policy: object, extra: Record<string, string>): Record<string, string> {
  const policyB64 = Buffer.from(JSON.stringify(policy)).toString('base64')
  return {
    ...extra,
    OSSAccessKeyId: stack.sim.credentials.accessKeyId,
    policy: policyB64,
    Signature: signV1(stack.sim.credentials.accessKeySecret, policyB64)
  }
}

const inAnHour = (): string => new Date(Date.now() + 3600_000).toISOString()

describe('PostObject through the real receiver', () => {
  const png = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.from([0, 0, 1, 0x40, 0, 0, 0, 0xf0]), Buffer.alloc(40)])

  it('V1 form with a pinned callback and x: field: JSON body with image info', async () => {
    const { callback } = encodeCallbackParam({
      callbackUrl: stack.callbackUrl,
      callbackBody: '{"object":${object},"size":${size},"w":${imageInfo.width},"h":${imageInfo.height},"f":${imageInfo.format},"op":${operation},"x:uid":${x:uid}}',
      callbackBodyType: 'application/json'
    })
    const key = 'uploads/照片 1+1.png'
    const res = await postForm({
      fields: v1Form({
        expiration: inAnHour(),
        conditions: [{ bucket: 'examplebucket' }, ['starts-with', '$key', 'uploads/'], ['content-length-range', 1, 1024], { callback }, ['eq', '$x:uid', '42']]
      }, { key, callback, 'x:uid': '42', success_action_status: '201' }),
      file: png
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(JSON.parse(res.text)).toEqual({ Status: 'OK', object: key, size: png.length, vars: { 'x:uid': '42' } })
    const cb = stack.received.at(-1)
    expect(cb?.raw.toString()).toBe(`{"object":"${key}","size":${png.length},"w":320,"h":240,"f":"png","op":"PostObject","x:uid":"42"}`)
    expect((await aliOssClient(stack.sim).get(key)).content).toEqual(png)
  })

  it('V4 form signature with ${filename} in the key and an urlencoded callback', async () => {
    const now = new Date()
    const dateTime = v4DateTime(now)
    const day = dateTime.slice(0, 8)
    const credential = `${stack.sim.credentials.accessKeyId}/${day}/cn-hangzhou/oss/aliyun_v4_request`
    const { callback } = encodeCallbackParam({ callbackUrl: stack.callbackUrl, callbackBody: 'object=${object}&size=${size}&mimeType=${mimeType}&x:a=${x:a}' })
    const policy = Buffer.from(JSON.stringify({
      expiration: inAnHour(),
      conditions: [{ bucket: 'examplebucket' }, { 'x-oss-signature-version': 'OSS4-HMAC-SHA256' }, { 'x-oss-credential': credential }, { 'x-oss-date': dateTime }, ['starts-with', '$key', 'v4/']]
    })).toString('base64')
    const res = await postForm({
      fields: {
        key: 'v4/${filename}',
        policy,
        'x-oss-signature-version': 'OSS4-HMAC-SHA256',
        'x-oss-credential': credential,
        'x-oss-date': dateTime,
        'x-oss-signature': signV4(v4SigningKey(stack.sim.credentials.accessKeySecret, day, 'cn-hangzhou'), policy),
        callback,
        'x:a': 'a b'
      },
      file: png,
      filename: 'photo 2.png'
    })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toEqual({ Status: 'OK', object: 'v4/photo 2.png', size: png.length, vars: { 'x:a': 'a b' } })
    expect(stack.received.at(-1)?.system.mimeType).toBe('image/png')
  })

  it('without a callback answers success_action_status (default 204; 201 with PostResponse XML)', async () => {
    const policy = { expiration: inAnHour(), conditions: [['starts-with', '$key', '']] }
    const r204 = await postForm({ fields: v1Form(policy, { key: 'plain-form.txt' }), file: Buffer.from('x') })
    expect(r204.status).toBe(204)
    const r201 = await postForm({ fields: v1Form(policy, { key: 'plain-form.txt', success_action_status: '201' }), file: Buffer.from('x') })
    expect(r201.status).toBe(201)
    expect(r201.text).toContain('<Key>plain-form.txt</Key>')
  })

  it.each([
    ['an expired policy', { expiration: new Date(Date.now() - 1000).toISOString(), conditions: [] }, {}, 403, 'AccessDenied', 'Invalid according to Policy: Policy expired.'],
    ['another bucket', { expiration: inAnHour(), conditions: [{ bucket: 'otherbucket' }] }, {}, 403, 'AccessDenied', 'Invalid according to Policy: Policy Condition failed: {"bucket":"otherbucket"}'],
    ['a key outside starts-with', { expiration: inAnHour(), conditions: [['starts-with', '$key', 'user/']] }, {}, 403, 'AccessDenied', 'Invalid according to Policy: Policy Condition failed: ["starts-with","$key","user/"]'],
    ['a file over content-length-range', { expiration: inAnHour(), conditions: [['content-length-range', 0, 3]] }, {}, 400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size.'],
    ['a changed pinned callback', { expiration: inAnHour(), conditions: [{ callback: 'eyJhIjoxfQ==' }] }, { callback: 'eyJiIjoxfQ==' }, 403, 'AccessDenied', 'Invalid according to Policy: Policy Condition failed: {"callback":"eyJhIjoxfQ=="}'],
    ['a changed pinned x: field', { expiration: inAnHour(), conditions: [['eq', '$x:uid', '42']] }, { 'x:uid': '43' }, 403, 'AccessDenied', 'Invalid according to Policy: Policy Condition failed: ["eq","$x:uid","42"]'],
    ['an expiration in local time without Z', { expiration: '2099-01-01T00:00:00', conditions: [] }, {}, 400, 'InvalidPolicyDocument', 'Invalid Policy: Invalid \'expiration\' value.']
  ])('refuses %s and stores nothing', async (_name, policy, extra, status, code, message) => {
    const key = `refused/${String(_name)}.txt`
    const res = await postForm({ fields: v1Form(policy, { key, ...extra }), file: Buffer.from('12345') })
    expect(res.status).toBe(status)
    expect(xmlError(res.text)).toMatchObject({ Code: code, Message: message })
    await expect(aliOssClient(stack.sim).head(key)).rejects.toMatchObject({ status: 404 })
  })

  it('refuses a wrong form signature with SignatureDoesNotMatch', async () => {
    const fields = v1Form({ expiration: inAnHour(), conditions: [] }, { key: 'bad-sig.txt' })
    fields.Signature = signV1('wrong-secret', fields.policy as string)
    const res = await postForm({ fields, file: Buffer.from('x') })
    expect(res.status).toBe(403)
    expect(res.text).toContain('<Code>SignatureDoesNotMatch</Code>')
  })

  it('ignores fields after the file, as OSS does', async () => {
    const policy = { expiration: inAnHour(), conditions: [] }
    const form = new FormData()
    for (const [k, v] of Object.entries(v1Form(policy, { key: 'order/first.txt' }))) form.append(k, v)
    form.append('file', new Blob([Buffer.from('data')]), 'f.txt')
    form.append('key', 'order/after-file.txt')
    const res = await fetch(`${stack.sim.origin}/examplebucket`, { method: 'POST', body: form })
    expect(res.status).toBe(204)
    expect((await aliOssClient(stack.sim).get('order/first.txt')).content.toString()).toBe('data')
  })
})
