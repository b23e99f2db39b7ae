import type { LightMyRequestResponse } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { OSS_CALLBACK_PUBLIC_KEY_V1_PEM } from '../../src/keys/pinned.js'
import type { VerifiedCallback } from '../../src/receiver/verify.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair, type SignedCallback } from '../helpers/keys.js'
import {
  expectCodedError, expectHealthy, expectNoSecretsInLog, pemBodyLines, post, rawRequest, startApp, testConfig,
  type Reply, type RunningApp
} from '../helpers/server.js'

const pair = testKeyPair(512)
const other = testKeyPair(1024)
const BODY_LIMIT = 65_536
let keys: KeyServer
let running: RunningApp
let keyUrl: string
let last: VerifiedCallback | undefined
const secrets = new Set<string>([...pemBodyLines(OSS_CALLBACK_PUBLIC_KEY_V1_PEM), ...pemBodyLines(pair.publicPem), ...pemBodyLines(other.publicPem)])

beforeAll(async () => {
  keys = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } })
  keyUrl = `${keys.origin}/k.pem`
  running = await startApp(testConfig({ keyOrigins: [keys.origin], bodyLimitBytes: BODY_LIMIT }), {
    handler: (callback) => {
      last = callback
      return { Status: 'OK', fields: Object.keys(callback.fields).length }
    }
  })
})

afterAll(async () => {
  await running.close()
  await keys.close()
})

afterEach(async () => {
  last = undefined
  await expectHealthy(running.origin)
  expectNoSecretsInLog(running.log, secrets)
  expect(({} as Record<string, unknown>).polluted).toBeUndefined()
})

function sign (body: string | Buffer, contentType = 'application/x-www-form-urlencoded'): SignedCallback {
  const cb = signedCallback({ keyUrl, privateKey: pair.privateKey, body, contentType })
  secrets.add(cb.headers.authorization as string)
  return cb
}

async function inject (cb: { url?: string, headers: Record<string, string>, body?: Buffer | string }, method = 'POST'): Promise<Reply> {
  const res: LightMyRequestResponse = await running.app.inject({ method: method as 'POST', url: cb.url ?? '/oss/callback', headers: cb.headers, payload: cb.body })
  return { status: res.statusCode, headers: res.headers as Reply['headers'], body: res.body }
}

/** A raw HTTP/1.1 request with the given header lines, so that duplicates and odd framing reach the server as written. */
function raw (headerLines: string[], body: Buffer | string = '', target = '/oss/callback'): Promise<Reply> {
  const b = Buffer.from(body)
  const head = [`POST ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...headerLines].join('\r\n')
  return rawRequest(running.port, Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), b]))
}

function linesOf (cb: SignedCallback, drop: string[] = []): string[] {
  return Object.entries(cb.headers).filter(([n]) => !drop.includes(n)).map(([n, v]) => `${n}: ${v}`).concat(`Content-Length: ${cb.body.length}`)
}

describe('the matrix set-up', () => {
  it('a well-formed signed callback is accepted over a raw socket', async () => {
    const cb = sign('bucket=b&object=o.jpg&size=7')
    const res = await raw(linesOf(cb), cb.body)
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({ Status: 'OK', fields: 3 })
  })
})

describe('headers', () => {
  it('two authorization lines: 400 OSS_CB_ERR_DUPLICATE_HEADER', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb), `authorization: ${cb.headers.authorization}`], cb.body)
    expectCodedError(res, 'OSS_CB_ERR_DUPLICATE_HEADER')
  })

  it('two authorization lines in different letter case: 400 OSS_CB_ERR_DUPLICATE_HEADER', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb, ['authorization']), `Authorization: ${cb.headers.authorization}`, `AUTHORIZATION: ${cb.headers.authorization}`], cb.body)
    expectCodedError(res, 'OSS_CB_ERR_DUPLICATE_HEADER')
  })

  it('two x-oss-pub-key-url lines (Node would join them with a comma): 400 OSS_CB_ERR_DUPLICATE_HEADER', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb), `x-oss-pub-key-url: ${cb.headers['x-oss-pub-key-url']}`], cb.body)
    expectCodedError(res, 'OSS_CB_ERR_DUPLICATE_HEADER')
  })

  // Node's default maxHeadersCount (2000) dropped every line past the 2000th, so these duplicates verified.
  const padding = Array.from({ length: 2000 }, () => 'a: 1')
  it('a second authorization after 2000 padding header lines: 400 OSS_CB_ERR_DUPLICATE_HEADER', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb), ...padding, `authorization: ${cb.headers.authorization}`], cb.body)
    expectCodedError(res, 'OSS_CB_ERR_DUPLICATE_HEADER')
  })

  it('a second x-oss-pub-key-url after 2000 padding header lines: 400 OSS_CB_ERR_DUPLICATE_HEADER', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb), ...padding, `x-oss-pub-key-url: ${cb.headers['x-oss-pub-key-url']}`], cb.body)
    expectCodedError(res, 'OSS_CB_ERR_DUPLICATE_HEADER')
  })

  it('2000 padding header lines and no duplicate: verified as usual', async () => {
    const cb = sign('bucket=b&object=padded.txt')
    const res = await raw([...padding, ...linesOf(cb)], cb.body)
    expect(res.status).toBe(200)
    expect(last?.system.object).toBe('padded.txt')
  })

  it('a comma-joined authorization: 400 OSS_CB_ERR_BAD_BASE64', async () => {
    const cb = sign('bucket=b')
    const sig = cb.headers.authorization as string
    expectCodedError(await inject({ ...cb, headers: { ...cb.headers, authorization: `${sig}, ${sig}` } }), 'OSS_CB_ERR_BAD_BASE64')
    expectCodedError(await inject({ ...cb, headers: { ...cb.headers, authorization: `${sig},${sig}` } }), 'OSS_CB_ERR_BAD_BASE64')
  })

  it('an empty authorization: 400 OSS_CB_ERR_MISSING_HEADER', async () => {
    const cb = sign('bucket=b')
    expectCodedError(await raw([...linesOf(cb, ['authorization']), 'authorization:'], cb.body), 'OSS_CB_ERR_MISSING_HEADER')
    expectCodedError(await raw([...linesOf(cb, ['authorization']), 'authorization:    '], cb.body), 'OSS_CB_ERR_MISSING_HEADER')
  })

  it('an empty or missing x-oss-pub-key-url: 400 OSS_CB_ERR_MISSING_HEADER', async () => {
    const cb = sign('bucket=b')
    expectCodedError(await raw([...linesOf(cb, ['x-oss-pub-key-url']), 'x-oss-pub-key-url:'], cb.body), 'OSS_CB_ERR_MISSING_HEADER')
    expectCodedError(await raw(linesOf(cb, ['x-oss-pub-key-url']), cb.body), 'OSS_CB_ERR_MISSING_HEADER')
  })

  it('no authorization at all: 400 OSS_CB_ERR_MISSING_HEADER', async () => {
    const cb = sign('bucket=b')
    expectCodedError(await raw(linesOf(cb, ['authorization']), cb.body), 'OSS_CB_ERR_MISSING_HEADER')
  })

  for (const [label, mangle] of [
    ['a scheme prefix', (s: string) => `OSS ${s}`],
    ['base64url characters', (s: string) => s.replaceAll('+', '-').replaceAll('/', '_').replace(/[A-Z]/, '-')],
    ['missing padding', (s: string) => s.replace(/=+$/, '')],
    ['extra padding', (s: string) => `${s}==`],
    ['white space inside', (s: string) => `${s.slice(0, 10)} ${s.slice(10)}`],
    ['a percent-encoded value', (s: string) => encodeURIComponent(s).replace(/^./, '%41')],
    ['non-zero padding bits', (s: string) => s.replace(/.==$/, 'B==').replace(/.=$/, 'B=')],
    ['non-ASCII', (s: string) => `${s.slice(0, -4)}\u00e9\u00e9==`]
  ] as Array<[string, (s: string) => string]>) {
    it(`an authorization with ${label}: 400 OSS_CB_ERR_BAD_BASE64`, async () => {
      const cb = sign('bucket=b')
      const value = mangle(cb.headers.authorization as string)
      expect(value).not.toBe(cb.headers.authorization)
      expectCodedError(await raw([...linesOf(cb, ['authorization']), `authorization: ${value}`], cb.body), 'OSS_CB_ERR_BAD_BASE64')
    })
  }

  it('a non-base64 x-oss-pub-key-url (the URL in clear): 400 OSS_CB_ERR_BAD_BASE64', async () => {
    const cb = sign('bucket=b')
    expectCodedError(await inject({ ...cb, headers: { ...cb.headers, 'x-oss-pub-key-url': keyUrl } }), 'OSS_CB_ERR_BAD_BASE64')
  })

  it('an over-long authorization (2 KB of valid base64): 400 OSS_CB_ERR_BAD_BASE64', async () => {
    const cb = sign('bucket=b')
    const long = Buffer.alloc(1500, 7).toString('base64')
    expectCodedError(await inject({ ...cb, headers: { ...cb.headers, authorization: long } }), 'OSS_CB_ERR_BAD_BASE64')
  })

  it('an authorization past the HTTP parser limit (20 KB): 431 OSS_CB_ERR_HEADERS_TOO_LARGE, coded like every other reply', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb, ['authorization']), `authorization: ${Buffer.alloc(15_000, 7).toString('base64')}`], cb.body)
    expectCodedError(res, 'OSS_CB_ERR_HEADERS_TOO_LARGE')
  })

  for (const [label, length] of [['one byte short', 63], ['one byte long', 65], ['the length of a 1024-bit key', 128], ['one byte', 1]] as const) {
    it(`a signature ${label} for the 512-bit key: 403 OSS_CB_ERR_SIGNATURE_MISMATCH`, async () => {
      const cb = sign('bucket=b')
      const sig = Buffer.from(cb.headers.authorization as string, 'base64')
      const wrong = length <= sig.length ? sig.subarray(0, length) : Buffer.concat([sig, Buffer.alloc(length - sig.length, 1)])
      expectCodedError(await inject({ ...cb, headers: { ...cb.headers, authorization: wrong.toString('base64') } }), 'OSS_CB_ERR_SIGNATURE_MISMATCH')
    })
  }

  it('a signature by another key, and an all-zero signature: 403 OSS_CB_ERR_SIGNATURE_MISMATCH', async () => {
    const cb = sign('bucket=b')
    const forged = signedCallback({ keyUrl, privateKey: other.privateKey, body: cb.body })
    secrets.add(forged.headers.authorization as string)
    expectCodedError(await inject(forged), 'OSS_CB_ERR_SIGNATURE_MISMATCH')
    expectCodedError(await inject({ ...cb, headers: { ...cb.headers, authorization: Buffer.alloc(64).toString('base64') } }), 'OSS_CB_ERR_SIGNATURE_MISMATCH')
  })
})

describe('bodies', () => {
  it('over the limit with Content-Length: 413 OSS_CB_ERR_BODY_TOO_LARGE', async () => {
    const cb = sign(Buffer.alloc(BODY_LIMIT + 1, 0x61))
    expectCodedError(await post(running.origin, cb.url, { headers: cb.headers, body: cb.body }), 'OSS_CB_ERR_BODY_TOO_LARGE')
  })

  it('over the limit, chunked without Content-Length: 413 OSS_CB_ERR_BODY_TOO_LARGE', async () => {
    const cb = sign(Buffer.alloc(BODY_LIMIT * 4, 0x61))
    expectCodedError(await post(running.origin, cb.url, { headers: cb.headers, body: cb.body, chunked: true }), 'OSS_CB_ERR_BODY_TOO_LARGE')
  })

  it('a Content-Length far past the limit, with no body sent: 413 at once', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb).filter((l) => !l.startsWith('Content-Length')), 'Content-Length: 1073741824'])
    expectCodedError(res, 'OSS_CB_ERR_BODY_TOO_LARGE')
  })

  it('a chunked body within the limit verifies like any other', async () => {
    const cb = sign('bucket=b&object=chunked.bin&size=3')
    const res = await post(running.origin, cb.url, { headers: cb.headers, body: cb.body, chunked: true })
    expect(res.status).toBe(200)
    expect(last?.system.object).toBe('chunked.bin')
  })

  it('both Content-Length and Transfer-Encoding (request smuggling shape): 400 OSS_CB_ERR_BAD_REQUEST', async () => {
    const cb = sign('bucket=b')
    const res = await raw([...linesOf(cb), 'Transfer-Encoding: chunked'], `${cb.body.length.toString(16)}\r\n${cb.body.toString()}\r\n0\r\n\r\n`)
    expectCodedError(res, 'OSS_CB_ERR_BAD_REQUEST')
  })

  for (const type of ['text/plain', 'application/octet-stream', 'application/json-patch+json', 'multipart/form-data; boundary=x', 'application/xml', 'application/x-www-form-urlencodedx']) {
    it(`content type ${type}: 415 OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE`, async () => {
      const cb = sign('bucket=b', type)
      expectCodedError(await post(running.origin, cb.url, { headers: cb.headers, body: cb.body }), 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE')
    })
  }

  it('no content type, with and without a body: 415 OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE', async () => {
    const cb = sign('bucket=b')
    expectCodedError(await raw(linesOf(cb, ['content-type']), cb.body), 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE')
    const empty = sign('')
    expectCodedError(await raw(linesOf(empty, ['content-type']), ''), 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE')
  })

  it('a content type with parameters and odd case is still the form type', async () => {
    const cb = sign('bucket=b', 'Application/X-WWW-Form-Urlencoded; charset=UTF-8')
    expect((await post(running.origin, cb.url, { headers: cb.headers, body: cb.body })).status).toBe(200)
  })

  it('a signed body that is not UTF-8: 400 OSS_CB_ERR_BODY_UNPARSEABLE', async () => {
    const cb = sign(Buffer.from([0x62, 0x3d, 0xff, 0xfe, 0xc3, 0x28]))
    expectCodedError(await post(running.origin, cb.url, { headers: cb.headers, body: cb.body }), 'OSS_CB_ERR_BODY_UNPARSEABLE')
  })

  it('a signed body with a bad percent escape: 400 OSS_CB_ERR_BODY_UNPARSEABLE', async () => {
    const cb = sign('bucket=%E0%A4%A')
    expectCodedError(await inject(cb), 'OSS_CB_ERR_BODY_UNPARSEABLE')
  })

  it('a verified JSON body that does not parse (a form template sent as JSON): 400 OSS_CB_ERR_BODY_UNPARSEABLE', async () => {
    const cb = sign('bucket=b&object=o', 'application/json')
    expectCodedError(await inject(cb), 'OSS_CB_ERR_BODY_UNPARSEABLE')
  })

  it('a verified JSON body that is an array or a string: 400 OSS_CB_ERR_BODY_UNPARSEABLE', async () => {
    expectCodedError(await inject(sign('[1,2]', 'application/json')), 'OSS_CB_ERR_BODY_UNPARSEABLE')
    expectCodedError(await inject(sign('"bucket"', 'application/json')), 'OSS_CB_ERR_BODY_UNPARSEABLE')
  })

  it('deeply nested JSON (30,000 levels) within the limit: parsed, no crash', async () => {
    const depth = 30_000
    const cb = sign(`{"bucket":"b","deep":${'['.repeat(depth)}${']'.repeat(depth)}}`, 'application/json')
    const res = await inject(cb)
    expect(res.status).toBe(200)
    expect(last?.system.bucket).toBe('b')
  })

  it('deeply nested, unbalanced JSON: 400 OSS_CB_ERR_BODY_UNPARSEABLE', async () => {
    const cb = sign(`{"deep":${'{"a":'.repeat(12_000)}`, 'application/json')
    expectCodedError(await inject(cb), 'OSS_CB_ERR_BODY_UNPARSEABLE')
  })

  it('__proto__ and constructor keys in JSON: ordinary own fields, no prototype pollution', async () => {
    const body = '{"__proto__":{"polluted":"yes","bucket":"evil"},"constructor":{"prototype":{"polluted":"yes"}},"x:__proto__":"v","object":"o.jpg"}'
    const res = await inject(sign(body, 'application/json'))
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({ Status: 'OK', fields: 4 })
    const cb = last as VerifiedCallback
    expect(Object.getPrototypeOf(cb.fields)).toBe(null)
    expect(Object.hasOwn(cb.fields, '__proto__')).toBe(true)
    expect(cb.fields.__proto__).toEqual({ polluted: 'yes', bucket: 'evil' })
    expect(cb.fields.constructor).toEqual({ prototype: { polluted: 'yes' } })
    expect(cb.system.bucket).toBeUndefined()
    expect(cb.system.object).toBe('o.jpg')
    expect(cb.vars['x:__proto__']).toBe('v')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('__proto__ and constructor keys in a form body: ordinary own fields, no prototype pollution', async () => {
    const body = '__proto__[polluted]=yes&__proto__=x&constructor[prototype][polluted]=yes&constructor=c&x%3A__proto__=v&bucket=b'
    const res = await inject(sign(body))
    expect(res.status).toBe(200)
    const cb = last as VerifiedCallback
    expect({ ...cb.fields }).toEqual({
      '__proto__[polluted]': 'yes', ['__proto__']: 'x', 'constructor[prototype][polluted]': 'yes', constructor: 'c', 'x:__proto__': 'v', bucket: 'b'
    })
    expect(Object.hasOwn(cb.fields, '__proto__')).toBe(true)
    expect(cb.vars['x:__proto__']).toBe('v')
    expect(cb.system.bucket).toBe('b')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

describe('routes and methods', () => {
  for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    it(`${method} on the callback path: 405 OSS_CB_ERR_METHOD_NOT_ALLOWED`, async () => {
      const res = await post(running.origin, '/oss/callback', { method, body: method === 'GET' || method === 'OPTIONS' ? undefined : 'x' })
      expectCodedError(res, 'OSS_CB_ERR_METHOD_NOT_ALLOWED')
      expect(res.headers.allow).toBe('POST')
    })
  }

  it('HEAD on the callback path: 405 with the error headers and no body', async () => {
    const res = await post(running.origin, '/oss/callback', { method: 'HEAD' })
    expect(res.status).toBe(405)
    expect(res.headers.allow).toBe('POST')
    expect(res.body).toBe('')
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
  })

  it('unknown paths, any method: 404 OSS_CB_ERR_NOT_FOUND', async () => {
    expectCodedError(await post(running.origin, '/nope', { method: 'GET' }), 'OSS_CB_ERR_NOT_FOUND')
    expectCodedError(await post(running.origin, '/oss/callback/', { method: 'GET' }), 'OSS_CB_ERR_NOT_FOUND')
    expectCodedError(await post(running.origin, '/OSS/CALLBACK', { method: 'GET' }), 'OSS_CB_ERR_NOT_FOUND')
  })

  it('another method on a GET route: 405 OSS_CB_ERR_METHOD_NOT_ALLOWED with Allow: GET, HEAD', async () => {
    for (const [path, method] of [['/healthz', 'DELETE'], ['/readyz', 'POST'], ['/metrics', 'PUT'], ['/healthz?x=1', 'OPTIONS']]) {
      const res = await post(running.origin, path as string, { method })
      expectCodedError(res, 'OSS_CB_ERR_METHOD_NOT_ALLOWED')
      expect(res.headers.allow).toBe('GET, HEAD')
    }
  })

  it('a signed callback to an unknown path: 404 OSS_CB_ERR_NOT_FOUND, its body never parsed', async () => {
    const cb = sign('{"__proto__":{"polluted":"yes"}}', 'application/json')
    expectCodedError(await post(running.origin, '/oss/callback2', { headers: cb.headers, body: cb.body }), 'OSS_CB_ERR_NOT_FOUND')
    const form = sign('bucket=b')
    expectCodedError(await post(running.origin, '/nope', { headers: form.headers, body: form.body }), 'OSS_CB_ERR_NOT_FOUND')
  })

  it('an unknown path with a body over the limit: 404 OSS_CB_ERR_NOT_FOUND, the body never read', async () => {
    const res = await post(running.origin, '/nope', { headers: { 'content-type': 'application/json' }, body: Buffer.alloc(BODY_LIMIT * 2, 0x20) })
    expectCodedError(res, 'OSS_CB_ERR_NOT_FOUND')
  })

  it('a malformed request line: 400 OSS_CB_ERR_BAD_REQUEST', async () => {
    const res = await rawRequest(running.port, 'POST /oss/callback HTTP/1.1 extra\r\nHost: x\r\n\r\n')
    expectCodedError(res, 'OSS_CB_ERR_BAD_REQUEST')
  })

  it('a request target that is not origin-form: 400, coded', async () => {
    const cb = sign('bucket=b')
    const res = await raw(linesOf(cb), cb.body, 'http://127.0.0.1/oss/callback')
    expect(res.status).toBeGreaterThanOrEqual(400)
    expect(res.status).toBeLessThan(500)
    expect(JSON.parse(res.body)).toHaveProperty('code')
    expectCodedError(res, (JSON.parse(res.body) as { code: string }).code)
  })
})

describe('regressions found by this matrix', () => {
  it('a PUT with a body on the callback path was answered 415 (body parsed before the method check); now 405', async () => {
    expectCodedError(await post(running.origin, '/oss/callback', { method: 'PUT', body: 'x', headers: { 'content-type': 'text/plain' } }), 'OSS_CB_ERR_METHOD_NOT_ALLOWED')
    expectCodedError(await post(running.origin, '/oss/callback', { method: 'PUT', body: Buffer.alloc(BODY_LIMIT * 2), headers: { 'content-type': 'application/json' } }), 'OSS_CB_ERR_METHOD_NOT_ALLOWED')
  })

  it('a JSON body with __proto__ posted to an unknown path was answered 400 by the root JSON parser; now 404 unread', async () => {
    expectCodedError(await post(running.origin, '/nope', { headers: { 'content-type': 'application/json' }, body: '{"__proto__":{"polluted":"yes"}}' }), 'OSS_CB_ERR_NOT_FOUND')
  })

  it('headers over the parser limit got Fastify\'s uncoded 431 body; now OSS_CB_ERR_HEADERS_TOO_LARGE', async () => {
    const res = await rawRequest(running.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`)
    expectCodedError(res, 'OSS_CB_ERR_HEADERS_TOO_LARGE')
    expect(res.headers.connection).toBe('close')
  })
})
