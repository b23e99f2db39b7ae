import { describe, expect, it } from 'vitest'
import { KeyProvider, type FetchLike } from '../../src/keys/provider.js'
import { OSS_CALLBACK_PUBLIC_KEY_V1_URLS } from '../../src/keys/pinned.js'
import { createCallbackVerifier } from '../../src/receiver/verify.js'
import { docCallback } from '../helpers/fixtures.js'
import { startKeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

const pair = testKeyPair(512)

describe('key transport (security)', () => {
  it('the pinned production key verifies the OSS doc callback with no fetch at all, for both URL forms', async () => {
    const urls: string[] = []
    const fetch: FetchLike = (input) => { urls.push(input); return Promise.reject(new Error('network used')) }
    const verifier = createCallbackVerifier({ keys: { fetch } })
    const cb = await verifier.verify({ url: `${docCallback.path}${docCallback.query}`, headers: docCallback.headers, body: Buffer.from(docCallback.body) })
    expect(cb.keySource).toBe('pinned')
    expect(cb.system.bucket).toBe('yonghu-test')
    for (const url of OSS_CALLBACK_PUBLIC_KEY_V1_URLS) expect((await verifier.keys.get(url)).source).toBe('pinned')
    expect(urls).toEqual([])
  })

  it('an unpinned key named with http:// on the production host is fetched over https', async () => {
    const urls: string[] = []
    const fetch: FetchLike = async (input) => { urls.push(input); return new Response(pair.publicPem, { status: 200 }) }
    const keys = new KeyProvider({ fetch })
    await keys.get('http://gosspublic.alicdn.com/callback_pub_key_v2.pem')
    expect(urls).toEqual(['https://gosspublic.alicdn.com/callback_pub_key_v2.pem'])
  })

  it('forged callbacks cannot turn into a stream of key fetches: 50 concurrent on a cold key fetch once, a bad signature refetches at most once', async () => {
    const server = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem, delayMs: 100 } })
    try {
      const verifier = createCallbackVerifier({ keyOrigins: [server.origin] })
      const good = signedCallback({ keyUrl: `${server.origin}/k.pem`, privateKey: pair.privateKey })
      const results = await Promise.all(Array.from({ length: 50 }, () => verifier.verify(good)))
      expect(results.every((r) => r.system.size === 42)).toBe(true)
      expect(server.hits.get('/k.pem')).toBe(1)
      const forged = { ...good, headers: { ...good.headers, authorization: Buffer.alloc(64, 1).toString('base64') } }
      const refused = await Promise.allSettled(Array.from({ length: 50 }, () => verifier.verify(forged)))
      expect(refused.every((r) => r.status === 'rejected' && (r.reason as { code: string }).code === 'OSS_CB_ERR_SIGNATURE_MISMATCH')).toBe(true)
      // The key was fetched moments ago: no rotation refetch for forged callbacks.
      expect(server.hits.get('/k.pem')).toBe(1)
    } finally {
      await server.close()
    }
  })
})

describe('key provider memory (security)', () => {
  it('regression: failed key URLs were remembered without bound; a flood of unique key names keeps the failure table within cacheMaxEntries', async () => {
    let fetches = 0
    const fetch: FetchLike = async () => { fetches++; return new Response('no', { status: 404 }) }
    const keys = new KeyProvider({ fetch, cacheMaxEntries: 50 })
    for (let i = 0; i < 1000; i++) {
      await expect(keys.get(`https://gosspublic.alicdn.com/flood-${i}.pem`)).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_FAILED' })
    }
    expect(fetches).toBe(1000)
    expect((keys as unknown as { failures: Map<string, unknown> }).failures.size).toBe(50)
    // The most recent failures still back off.
    await expect(keys.get('https://gosspublic.alicdn.com/flood-999.pem')).rejects.toMatchObject({ code: 'OSS_CB_ERR_KEY_FETCH_BACKOFF' })
    expect(fetches).toBe(1000)
  })
})
