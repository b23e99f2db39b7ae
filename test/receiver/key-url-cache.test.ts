import { describe, expect, it } from 'vitest'
import type { KeyObject } from 'node:crypto'
import { createCallbackVerifier, type CallbackRequest } from '../../src/receiver/verify.js'
import { KeyProvider } from '../../src/keys/provider.js'
import { isOssCallbackError } from '../../src/errors.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

// The verifier remembers accepted x-oss-pub-key-url header values and reads pinned or cached keys
// without awaiting: these tests hold both shortcuts to the results of the full path.
const ORIGIN = 'http://127.0.0.1:9'

function requestFor (keyUrl: string, keyUrlHeader?: string): CallbackRequest {
  const cb = signedCallback({ keyUrl, privateKey: testKeyPair(512).privateKey })
  const headers = keyUrlHeader === undefined ? cb.headers : { ...cb.headers, 'x-oss-pub-key-url': keyUrlHeader }
  return { url: cb.url, headers, body: cb.body }
}

async function codeOf (promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
    return undefined
  } catch (err) {
    return isOssCallbackError(err) ? err.code : String(err)
  }
}

describe('key URL shortcuts', () => {
  it('refuses the same refused key URL header every time, with the same code', async () => {
    const verifier = createCallbackVerifier({ keyOrigins: [ORIGIN], keys: { pinned: new Map([[`${ORIGIN}/k.pem`, testKeyPair(512).publicKey]]) } })
    const cases: Array<[string, string]> = [
      [Buffer.from('http://evil.example/k.pem').toString('base64'), 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED'],
      [Buffer.from('HTTP://127.0.0.1:9/k.pem').toString('base64'), 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED'],
      [Buffer.from(`${ORIGIN}/k.pem\n`).toString('base64'), 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED'],
      ['aHR0cDovLzEyNy4wLjAuMTo5L2sucGVt!', 'OSS_CB_ERR_BAD_BASE64']
    ]
    for (const [header, code] of cases) {
      for (let i = 0; i < 3; i++) expect(await codeOf(verifier.verify(requestFor(`${ORIGIN}/k.pem`, header)))).toBe(code)
    }
    expect(await codeOf(verifier.verify(requestFor(`${ORIGIN}/k.pem`)))).toBeUndefined()
  })

  it('verifies with the right key and reports the right URL across more distinct key URLs than it remembers', async () => {
    const key = testKeyPair(512).publicKey
    const urls = Array.from({ length: 150 }, (_v, i) => `${ORIGIN}/key-${i}.pem`)
    const verifier = createCallbackVerifier({ keyOrigins: [ORIGIN], keys: { pinned: new Map(urls.map((u) => [u, key])) } })
    for (let round = 0; round < 2; round++) {
      for (const url of urls) {
        const cb = await verifier.verify(requestFor(url))
        expect(cb.keyUrl).toBe(url)
        expect(cb.keySource).toBe('pinned')
      }
    }
    expect(verifier.keys.stats.pinnedHits).toBe(300)
  })

  it('getCached answers pinned and fresh cached keys, counts them as hits, and leaves misses and expiry to get()', async () => {
    let now = 1_000_000
    let fetches = 0
    const pem = testKeyPair(512).publicPem
    const pinnedKey: KeyObject = testKeyPair(1024).publicKey
    const keys = new KeyProvider({
      now: () => now,
      cacheTtlMs: 1000,
      pinned: new Map([[`${ORIGIN}/pinned.pem`, pinnedKey]]),
      fetch: async () => { fetches++; return new Response(pem) }
    })
    expect(keys.getCached(`${ORIGIN}/pinned.pem`)).toEqual({ key: pinnedKey, source: 'pinned' })
    expect(keys.getCached(`${ORIGIN}/fetched.pem`)).toBeUndefined()
    expect(keys.stats).toMatchObject({ pinnedHits: 1, cacheHits: 0, cacheMisses: 0, fetches: 0 })

    expect((await keys.get(`${ORIGIN}/fetched.pem`)).source).toBe('fetch')
    expect(keys.getCached(`${ORIGIN}/fetched.pem`)?.source).toBe('cache')
    expect(keys.stats).toMatchObject({ cacheHits: 1, cacheMisses: 1, fetches: 1 })

    now += 1000
    expect(keys.getCached(`${ORIGIN}/fetched.pem`)).toBeUndefined()
    expect((await keys.get(`${ORIGIN}/fetched.pem`)).source).toBe('fetch')
    expect(fetches).toBe(2)
    expect(keys.stats).toMatchObject({ cacheHits: 1, cacheMisses: 2, fetches: 2 })
  })
})
