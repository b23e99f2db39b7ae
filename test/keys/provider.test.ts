import { afterEach, describe, expect, it } from 'vitest'
import { KeyProvider, type FetchLike } from '../../src/keys/provider.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { testKeyPair } from '../helpers/keys.js'

const pem = testKeyPair(512).publicPem
let server: KeyServer | undefined
afterEach(async () => { await server?.close(); server = undefined })

function clock (start = 1_000_000): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

describe('KeyProvider', () => {
  it('answers pinned production keys without any fetch', async () => {
    const fetch: FetchLike = () => { throw new Error('no network') }
    const keys = new KeyProvider({ fetch })
    for (const url of ['https://gosspublic.alicdn.com/callback_pub_key_v1.pem', 'http://gosspublic.alicdn.com/callback_pub_key_v1.pem']) {
      const got = await keys.get(url)
      expect(got.source).toBe('pinned')
      expect(got.key.asymmetricKeyDetails?.modulusLength).toBe(512)
    }
    expect(keys.stats.fetches).toBe(0)
  })

  it('fetches a key once for 50 concurrent first callers (single flight)', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'pem', pem, delayMs: 100 } })
    const keys = new KeyProvider()
    const results = await Promise.all(Array.from({ length: 50 }, () => keys.get(server!.url('/k.pem'))))
    expect(server.hits.get('/k.pem')).toBe(1)
    expect(new Set(results.map((r) => r.key)).size).toBe(1)
    expect(results.every((r) => r.source === 'fetch')).toBe(true)
  })

  it('serves later callers from the cache until the TTL passes', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'pem', pem } })
    const c = clock()
    const keys = new KeyProvider({ now: c.now, cacheTtlMs: 60_000 })
    await keys.get(server.url('/k.pem'))
    c.advance(59_999)
    expect((await keys.get(server.url('/k.pem'))).source).toBe('cache')
    expect(server.hits.get('/k.pem')).toBe(1)
    c.advance(1)
    expect((await keys.get(server.url('/k.pem'))).source).toBe('fetch')
    expect(server.hits.get('/k.pem')).toBe(2)
  })

  it('keeps at most cacheMaxEntries keys, dropping the least recently used', async () => {
    server = await startKeyServer({ '/a.pem': { kind: 'pem', pem }, '/b.pem': { kind: 'pem', pem }, '/c.pem': { kind: 'pem', pem } })
    const keys = new KeyProvider({ cacheMaxEntries: 2 })
    await keys.get(server.url('/a.pem'))
    await keys.get(server.url('/b.pem'))
    await keys.get(server.url('/a.pem')) // a is now the most recent
    await keys.get(server.url('/c.pem')) // evicts b
    await keys.get(server.url('/a.pem'))
    await keys.get(server.url('/b.pem'))
    expect(Object.fromEntries(server.hits)).toEqual({ '/a.pem': 1, '/b.pem': 2, '/c.pem': 1 })
  })

  it('times out a key server that never answers', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'hang' } })
    const keys = new KeyProvider({ fetchTimeoutMs: 300 })
    const started = Date.now()
    await expect(keys.get(server.url('/k.pem'))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_TIMEOUT', statusCode: 504 })
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('times out a key server that dribbles its body', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'dribble', intervalMs: 50 } })
    const keys = new KeyProvider({ fetchTimeoutMs: 300 })
    await expect(keys.get(server.url('/k.pem'))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_TIMEOUT' })
  })

  it('gives a caller with less time left its own timeout while the shared fetch goes on', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'pem', pem, delayMs: 400 } })
    const keys = new KeyProvider({ fetchTimeoutMs: 2000 })
    const hurried = keys.get(server.url('/k.pem'), { timeoutMs: 50 })
    const patient = keys.get(server.url('/k.pem'))
    await expect(hurried).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_TIMEOUT' })
    expect((await patient).source).toBe('fetch')
    expect(server.hits.get('/k.pem')).toBe(1)
  })

  it('does not follow a redirect', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'redirect', location: '/real.pem' }, '/real.pem': { kind: 'pem', pem } })
    const keys = new KeyProvider()
    await expect(keys.get(server.url('/k.pem'))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_FAILED', statusCode: 502 })
    expect(server.hits.get('/real.pem')).toBeUndefined()
  })

  it('stops reading a 5 MB answer at the size cap', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'bytes', bytes: 5 * 1024 * 1024 } })
    const keys = new KeyProvider()
    await expect(keys.get(server.url('/k.pem'))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_FAILED' })
  })

  it.each([
    ['a 404', { kind: 'status', status: 404 } as const, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
    ['a 204', { kind: 'status', status: 204 } as const, 'OSS_CB_ERR_KEY_FETCH_FAILED'],
    ['text that is not a PEM', { kind: 'text', body: 'hello' } as const, 'OSS_CB_ERR_KEY_INVALID']
  ])('refuses %s', async (_name, route, code) => {
    server = await startKeyServer({ '/k.pem': route })
    await expect(new KeyProvider().get(server.url('/k.pem'))).rejects.toMatchObject({ code })
  })

  it('refuses a non-RSA key', async () => {
    const { generateKeyPairSync } = await import('node:crypto')
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
    server = await startKeyServer({ '/k.pem': { kind: 'pem', pem: ec } })
    await expect(new KeyProvider().get(server.url('/k.pem'))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_INVALID', statusCode: 502 })
  })

  it('does not cache failures as keys, but backs off before fetching again', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'status', status: 500 } })
    const c = clock()
    const keys = new KeyProvider({ now: c.now, failureBackoffMs: 5000 })
    await expect(keys.get(server.url('/k.pem'))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_FAILED' })
    await expect(keys.get(server.url('/k.pem'))).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_BACKOFF', statusCode: 503 })
    expect(server.hits.get('/k.pem')).toBe(1)
    server.routes.set('/k.pem', { kind: 'pem', pem })
    c.advance(5000)
    expect((await keys.get(server.url('/k.pem'))).source).toBe('fetch')
    expect(server.hits.get('/k.pem')).toBe(2)
  })

  it('refetches a cached key for rotation at most once per interval', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'pem', pem } })
    const c = clock()
    const keys = new KeyProvider({ now: c.now, refreshMinIntervalMs: 60_000 })
    await keys.get(server.url('/k.pem'))
    expect(await keys.refresh(server.url('/k.pem'))).toBeUndefined()
    c.advance(60_000)
    expect((await keys.refresh(server.url('/k.pem')))?.source).toBe('fetch')
    expect(await keys.refresh(server.url('/k.pem'))).toBeUndefined()
    expect(server.hits.get('/k.pem')).toBe(2)
  })

  it('never refetches a pinned key', async () => {
    const keys = new KeyProvider({ fetch: () => { throw new Error('no network') } })
    expect(await keys.refresh('https://gosspublic.alicdn.com/callback_pub_key_v1.pem')).toBeUndefined()
  })

  it('fetches an unpinned key on the production host over https even when the URL says http', async () => {
    const asked: string[] = []
    const fetch: FetchLike = async (input) => { asked.push(input); return new Response(pem, { status: 200 }) }
    const keys = new KeyProvider({ fetch })
    await keys.get('http://gosspublic.alicdn.com/callback_pub_key_v2.pem')
    expect(asked).toEqual(['https://gosspublic.alicdn.com/callback_pub_key_v2.pem'])
  })

  it('fetches plain http from an explicitly configured origin', async () => {
    server = await startKeyServer({ '/k.pem': { kind: 'pem', pem } })
    await new KeyProvider().get(server.url('/k.pem'))
    expect(server.hits.get('/k.pem')).toBe(1)
  })

  it.each([
    ['fetchTimeoutMs', { fetchTimeoutMs: 0 }],
    ['maxKeyBytes', { maxKeyBytes: 1.5 }],
    ['cacheTtlMs', { cacheTtlMs: -1 }],
    ['cacheMaxEntries', { cacheMaxEntries: Number.NaN }],
    ['failureBackoffMs', { failureBackoffMs: -5 }]
  ])('refuses a bad %s at construction', (_name, options) => {
    expect(() => new KeyProvider(options)).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_INVALID_OPTION' }))
  })
})
