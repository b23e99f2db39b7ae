import { AsyncLocalStorage } from 'node:async_hooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCallbackVerifier, verifyCallback, type CallbackRequest } from '../../src/receiver/verify.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { docCallback } from '../helpers/fixtures.js'
import { nodeCryptoVerifier, type SignatureVerifier } from '../../src/receiver/signature-verifier.js'
import type { FetchLike } from '../../src/keys/provider.js'
import { atTurnEnd } from '../../src/turn.js'

const docRequest: CallbackRequest = {
  url: docCallback.path + docCallback.query,
  headers: docCallback.headers,
  body: Buffer.from(docCallback.body)
}

describe('verifyCallback with the real OSS callback', () => {
  it('verifies offline with the pinned production key', async () => {
    const cb = await verifyCallback(docRequest)
    expect(cb.keySource).toBe('pinned')
    expect(cb.keyUrl).toBe(docCallback.pubKeyUrl)
    expect(cb.system.bucket).toBe('yonghu-test')
    expect(cb.path).toBe('/index.php')
    expect(cb.query).toBe('id=1&index=2')
    expect(cb.raw.toString()).toBe('bucket=yonghu-test')
  })
})

describe('createCallbackVerifier', () => {
  let server: KeyServer
  const k512 = testKeyPair(512)
  const k2048 = testKeyPair(2048)
  const other = testKeyPair(1024)
  beforeAll(async () => {
    server = await startKeyServer({ '/k512.pem': { kind: 'pem', pem: k512.publicPem }, '/k2048.pem': { kind: 'pem', pem: k2048.publicPem } })
  })
  afterAll(async () => { await server.close() })

  function verifier (extra: Parameters<typeof createCallbackVerifier>[0] = {}): ReturnType<typeof createCallbackVerifier> {
    return createCallbackVerifier({ keyOrigins: [server.origin], ...extra })
  }

  it.each([512, 2048] as const)('verifies a callback signed with a %i-bit key fetched from an allowed origin', async (bits) => {
    const pair = bits === 512 ? k512 : k2048
    const req = signedCallback({ url: '/cb?ticket=1', keyUrl: server.url(`/k${bits}.pem`), privateKey: pair.privateKey, body: '{"bucket":"b","size":3,"x:a":"1"}', contentType: 'application/json' })
    const cb = await verifier().verify(req)
    expect(cb.type).toBe('json')
    expect(cb.system.size).toBe(3)
    expect(cb.vars['x:a']).toBe('1')
    expect(cb.keySource).toBe('fetch')
  })

  it('verifies against the public path when a proxy stripped a prefix', async () => {
    const req = signedCallback({ url: '/cb', signedUrl: '/api/cb', keyUrl: server.url('/k512.pem'), privateKey: k512.privateKey })
    await expect(verifier().verify(req)).rejects.toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
    expect((await verifier({ publicPath: '/api/cb' }).verify(req)).path).toBe('/api/cb')
  })

  const good = (): ReturnType<typeof signedCallback> => signedCallback({ url: '/cb?a=1', keyUrl: server.url('/k512.pem'), privateKey: k512.privateKey })
  const b64 = (s: string): string => Buffer.from(s).toString('base64')

  const negatives: Array<[string, (r: ReturnType<typeof good>) => CallbackRequest, string]> = [
    ['authorization missing', (r) => ({ ...r, headers: { ...r.headers, authorization: undefined } as never }), 'OSS_CB_ERR_MISSING_HEADER'],
    ['x-oss-pub-key-url missing', (r) => ({ ...r, headers: { ...r.headers, 'x-oss-pub-key-url': undefined } as never }), 'OSS_CB_ERR_MISSING_HEADER'],
    ['authorization empty', (r) => ({ ...r, headers: { ...r.headers, authorization: '' } }), 'OSS_CB_ERR_MISSING_HEADER'],
    ['authorization duplicated (raw headers)', (r) => ({ ...r, rawHeaders: ['Authorization', r.headers.authorization as string, 'authorization', 'AAAA'] }), 'OSS_CB_ERR_DUPLICATE_HEADER'],
    ['authorization as an array', (r) => ({ ...r, headers: { ...r.headers, authorization: [r.headers.authorization as string, 'x'] } }), 'OSS_CB_ERR_DUPLICATE_HEADER'],
    ['authorization not base64', (r) => ({ ...r, headers: { ...r.headers, authorization: 'not base64!' } }), 'OSS_CB_ERR_BAD_BASE64'],
    ['authorization comma-joined', (r) => ({ ...r, headers: { ...r.headers, authorization: `${r.headers.authorization as string}, ${r.headers.authorization as string}` } }), 'OSS_CB_ERR_BAD_BASE64'],
    ['key URL not base64', (r) => ({ ...r, headers: { ...r.headers, 'x-oss-pub-key-url': server.url('/k512.pem') } }), 'OSS_CB_ERR_BAD_BASE64'],
    ['content type missing', (r) => ({ ...r, headers: { ...r.headers, 'content-type': undefined } as never }), 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE'],
    ['content type text/plain', (r) => ({ ...r, headers: { ...r.headers, 'content-type': 'text/plain' } }), 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE'],
    ['path tampered', (r) => ({ ...r, url: '/cc?a=1' }), 'OSS_CB_ERR_SIGNATURE_MISMATCH'],
    ['query tampered', (r) => ({ ...r, url: '/cb?a=2' }), 'OSS_CB_ERR_SIGNATURE_MISMATCH'],
    ['query dropped', (r) => ({ ...r, url: '/cb' }), 'OSS_CB_ERR_SIGNATURE_MISMATCH'],
    ['body tampered', (r) => ({ ...r, body: Buffer.concat([r.body, Buffer.from('&x=1')]) }), 'OSS_CB_ERR_SIGNATURE_MISMATCH'],
    ['signature truncated', (r) => ({ ...r, headers: { ...r.headers, authorization: Buffer.from(r.headers.authorization as string, 'base64').subarray(1).toString('base64') } }), 'OSS_CB_ERR_SIGNATURE_MISMATCH'],
    ['signed with another key', (r) => ({ ...r, headers: { ...r.headers, authorization: signedCallback({ url: r.url, body: r.body, keyUrl: '', privateKey: other.privateKey }).headers.authorization as string } }), 'OSS_CB_ERR_SIGNATURE_MISMATCH'],
    ['key URL look-alike host', (r) => ({ ...r, headers: { ...r.headers, 'x-oss-pub-key-url': b64('https://gosspublic.alicdn.com.evil.example/k.pem') } }), 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED'],
    ['key URL userinfo trick', (r) => ({ ...r, headers: { ...r.headers, 'x-oss-pub-key-url': b64('https://gosspublic.alicdn.com@evil.example/k.pem') } }), 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED'],
    ['key URL in a query', (r) => ({ ...r, headers: { ...r.headers, 'x-oss-pub-key-url': b64('https://evil.example/?https://gosspublic.alicdn.com/') } }), 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED'],
    ['key URL with control bytes', (r) => ({ ...r, headers: { ...r.headers, 'x-oss-pub-key-url': b64(`${server.url('/k512.pem')}\n`) } }), 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED']
  ]

  it.each(negatives)('refuses: %s', async (_name, mutate, code) => {
    await expect(verifier().verify(mutate(good()))).rejects.toMatchObject({ code })
  })

  it('fetches nothing for a refused key URL', async () => {
    const before = server.total()
    const req = good()
    req.headers['x-oss-pub-key-url'] = b64(`${server.origin}.evil.example/k512.pem`)
    await expect(verifier().verify(req)).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED' })
    expect(server.total()).toBe(before)
  })

  it('refetches once when a fetched key stops verifying (rotation) and then verifies with the new key', async () => {
    const rotating = await startKeyServer({ '/r.pem': { kind: 'pem', pem: other.publicPem } })
    try {
      let t = 0
      const v = createCallbackVerifier({ keyOrigins: [rotating.origin], keys: { now: () => t, refreshMinIntervalMs: 1000 } })
      const signedOld = signedCallback({ keyUrl: rotating.url('/r.pem'), privateKey: other.privateKey })
      await v.verify(signedOld)
      rotating.routes.set('/r.pem', { kind: 'pem', pem: k512.publicPem })
      const signedNew = signedCallback({ keyUrl: rotating.url('/r.pem'), privateKey: k512.privateKey })
      await expect(v.verify(signedNew)).rejects.toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
      expect(rotating.hits.get('/r.pem')).toBe(1)
      t = 1000
      expect((await v.verify(signedNew)).keySource).toBe('fetch')
      expect(rotating.hits.get('/r.pem')).toBe(2)
      // A forged signature now costs no further fetch.
      await expect(v.verify({ ...signedNew, body: Buffer.from('forged') })).rejects.toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
      expect(rotating.hits.get('/r.pem')).toBe(2)
    } finally {
      await rotating.close()
    }
  })

  it('with a bucket list, accepts only verified callbacks whose body names a listed bucket', async () => {
    const v = verifier({ buckets: ['mine', 'mine-too'] })
    const sign = (body: string, contentType?: string): CallbackRequest => signedCallback({ keyUrl: server.url('/k512.pem'), privateKey: k512.privateKey, body, contentType })
    expect((await v.verify(sign('bucket=mine&object=a&size=1'))).system.bucket).toBe('mine')
    expect((await v.verify(sign('{"bucket":"mine-too","object":"a"}', 'application/json'))).system.bucket).toBe('mine-too')
    for (const [body, type] of [
      ['bucket=theirs&object=a&size=1', undefined],
      ['object=a&size=1', undefined],
      ['bucket=&object=a', undefined],
      ['bucket=MINE&object=a', undefined],
      ['{"bucket":"theirs"}', 'application/json'],
      ['{"bucket":["mine"]}', 'application/json'],
      ['{"object":"a"}', 'application/json']
    ] as const) {
      await expect(v.verify(sign(body, type)), body).rejects.toMatchObject({ code: 'OSS_CB_ERR_BUCKET_NOT_ALLOWED', statusCode: 403 })
    }
    // A forged callback naming a listed bucket is still a signature mismatch: the list is checked after verification.
    await expect(v.verify({ ...sign('bucket=theirs'), body: Buffer.from('bucket=mine') })).rejects.toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
    expect(v.buckets).toEqual(['mine', 'mine-too'])
    expect(verifier().buckets).toBeUndefined()
    expect((await verifier().verify(sign('bucket=theirs'))).system.bucket).toBe('theirs')
  })

  it.each([[[]], [['Upper']], [['a']], [['ok-bucket', '']], [[42]]])('refuses buckets %j at creation', (buckets) => {
    expect(() => createCallbackVerifier({ buckets: buckets as string[] })).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_INVALID_OPTION' }))
  })

  it('reports a verified body that does not parse as its own error', async () => {
    const req = signedCallback({ keyUrl: server.url('/k512.pem'), privateKey: k512.privateKey, body: '{"size":', contentType: 'application/json' })
    await expect(verifier().verify(req)).rejects.toMatchObject({ code: 'OSS_CB_ERR_BODY_UNPARSEABLE', statusCode: 400 })
  })

  it('refuses a bad publicPath at creation', () => {
    expect(() => createCallbackVerifier({ publicPath: 'no-slash' })).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_INVALID_OPTION' }))
  })
})

describe('verifications in batches', () => {
  const k512 = testKeyPair(512)
  let server: KeyServer
  beforeAll(async () => { server = await startKeyServer({ '/k512.pem': { kind: 'pem', pem: k512.publicPem } }) })
  afterAll(async () => { await server.close() })

  // Counts signature checks, so that the test sees when they run.
  function counted (): { checks: number[], verify: SignatureVerifier } {
    const checks: number[] = []
    return { checks, verify: (key, data, signature) => { checks.push(data.length); return nodeCryptoVerifier(key, data, signature) } }
  }
  const callback = (body: string): CallbackRequest => signedCallback({ keyUrl: server.url('/k512.pem'), privateKey: k512.privateKey, body })

  it('runs the verifications of one event-loop turn together after it, each with its own result', async () => {
    const check = counted()
    const v = createCallbackVerifier({ keyOrigins: [server.origin], signatureVerifier: check.verify })
    await v.verify(callback('bucket=warm')) // the key is now cached
    check.checks.length = 0
    const forged = { ...callback('bucket=b2'), body: Buffer.from('bucket=forged') }
    const results = [v.verify(callback('bucket=b1')), v.verify(forged), v.verify(callback('bucket=b3'))]
    const settled = Promise.allSettled(results)
    expect(check.checks).toEqual([])
    await new Promise((resolve) => setImmediate(resolve))
    expect(check.checks).toHaveLength(3)
    const [first, second, third] = await settled
    expect(first).toMatchObject({ status: 'fulfilled', value: { system: { bucket: 'b1' } } })
    expect(second).toMatchObject({ status: 'rejected', reason: { code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' } })
    expect(third).toMatchObject({ status: 'fulfilled', value: { system: { bucket: 'b3' } } })
  })

  it('runs each batched verification in its caller\'s async context', async () => {
    const als = new AsyncLocalStorage<string>()
    const seen: Array<string | undefined> = []
    const v = createCallbackVerifier({
      keyOrigins: [server.origin],
      signatureVerifier: (key, data, signature) => { seen.push(als.getStore()); return nodeCryptoVerifier(key, data, signature) }
    })
    await v.verify(callback('bucket=warm'))
    seen.length = 0
    await Promise.all([als.run('first', () => v.verify(callback('bucket=1'))), als.run('second', () => v.verify(callback('bucket=2')))])
    expect(seen).toEqual(['first', 'second'])
  })

  it('what a verified callback writes next (the group commit) leaves at the end of the same turn, not a turn later', async () => {
    const v = createCallbackVerifier({ keyOrigins: [server.origin] })
    await v.verify(callback('bucket=warm'))
    const order: string[] = []
    const handle = async (name: string): Promise<void> => {
      await v.verify(callback(`bucket=${name}`))
      if (name === 'b1') setImmediate(() => order.push('next turn'))
      await new Promise<void>((resolve) => { atTurnEnd(() => { order.push(`write ${name}`); resolve() }) })
    }
    await Promise.all([handle('b1'), handle('b2')])
    await new Promise((resolve) => setTimeout(resolve, 20))
    // With the batch on a setImmediate of its own, the writes would come after the next turn.
    expect(order).toEqual(['write b1', 'write b2', 'next turn'])
  })

  it('verifies at once with batchVerifications: false', async () => {
    const check = counted()
    const v = createCallbackVerifier({ keyOrigins: [server.origin], signatureVerifier: check.verify, batchVerifications: false })
    await v.verify(callback('bucket=warm'))
    const result = v.verify(callback('bucket=now'))
    expect(check.checks).toHaveLength(2)
    expect((await result).system.bucket).toBe('now')
  })

  it('refuses a batchVerifications that is not a boolean at creation', () => {
    expect(() => createCallbackVerifier({ batchVerifications: 'yes' as never })).toThrow(expect.objectContaining({
      code: 'OSS_CB_ERR_INVALID_OPTION',
      message: 'Invalid option: batchVerifications must be true or false, got "yes"'
    }))
  })
})

describe('regression: a forged callback evicted a good cached key', () => {
  // The key host is reached through an injected fetch, its state switched by the test; the clock is injected too.
  const pair = testKeyPair(512)
  const keyUrl = 'http://127.0.0.1:9/k.pem'
  function keyHost (): { fetch: FetchLike, state: { answer: 'pem' | 'down' | 'junk' }, calls: () => number } {
    const state: { answer: 'pem' | 'down' | 'junk' } = { answer: 'pem' }
    let calls = 0
    const fetch: FetchLike = async () => {
      calls++
      if (state.answer === 'down') throw new TypeError('fetch failed')
      return new Response(state.answer === 'pem' ? pair.publicPem : 'not a key', { status: 200 })
    }
    return { fetch, state, calls: () => calls }
  }
  const genuine = (n: number): CallbackRequest => signedCallback({ keyUrl, privateKey: pair.privateKey, body: `bucket=b&object=o${n}&size=1` })
  const forged = (n: number): CallbackRequest => ({ ...genuine(n), body: Buffer.from(`bucket=b&object=forged${n}&size=1`) })

  it.each(['down', 'junk'] as const)('key host %s: one forged callback a minute, and every genuine callback still verifies with the cached key', async (answer) => {
    const host = keyHost()
    let t = 1_000_000
    const v = createCallbackVerifier({
      keyOrigins: ['http://127.0.0.1:9'],
      batchVerifications: false,
      keys: { fetch: host.fetch, now: () => t, refreshMinIntervalMs: 60_000, failureBackoffMs: 300_000, cacheTtlMs: 3_600_000 }
    })
    expect((await v.verify(genuine(0))).keySource).toBe('fetch')
    expect(host.calls()).toBe(1)
    host.state.answer = answer
    for (let minute = 1; minute <= 5; minute++) {
      t += 60_000
      await expect(v.verify(forged(minute))).rejects.toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
      // The forged callback tried one refetch (rotation) and it failed, or did not parse.
      expect(host.calls()).toBe(1 + minute)
      for (let i = 0; i < 3; i++) {
        t += 1000
        const cb = await v.verify(genuine(minute * 10 + i))
        expect(cb.keySource).toBe('cache')
        // A second forged callback within the minute costs no fetch.
        await expect(v.verify(forged(minute * 10 + i))).rejects.toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
      }
      expect(host.calls()).toBe(1 + minute)
    }
    expect(v.keys.stats.backoffRejections).toBe(0)
    // The host is back: the next refetch (a minute later) replaces the key, and genuine callbacks go on verifying.
    host.state.answer = 'pem'
    t += 60_000
    await expect(v.verify(forged(99))).rejects.toMatchObject({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
    expect(host.calls()).toBe(7)
    expect((await v.verify(genuine(99))).keySource).toBe('cache')
  })

  it('a failed fetch of a URL with no usable key still backs off', async () => {
    const host = keyHost()
    host.state.answer = 'down'
    const t = 1_000_000
    const v = createCallbackVerifier({ keyOrigins: ['http://127.0.0.1:9'], batchVerifications: false, keys: { fetch: host.fetch, now: () => t, failureBackoffMs: 5000 } })
    await expect(v.verify(genuine(1))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_FAILED' })
    await expect(v.verify(genuine(2))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_BACKOFF' })
    expect(host.calls()).toBe(1)
  })
})
