import { describe, expect, it } from 'vitest'
import { createDiagnostics, type RefusedRequest } from '../../src/diagnose/explain.js'
import { createRateLimiter } from '../../src/diagnose/rate-limit.js'
import { ossError } from '../../src/errors.js'
import { KeyProvider } from '../../src/keys/provider.js'
import { verifyWithNodeCrypto } from '../../src/protocol/signature.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'

describe('token bucket', () => {
  it('allows a burst of its rate, then one per 1/rate seconds of the injected clock', () => {
    let now = 1_000_000
    const limiter = createRateLimiter(20, () => now)
    let allowed = 0
    for (let i = 0; i < 100; i++) if (limiter.take()) allowed++
    expect(allowed).toBe(20)
    now += 49
    expect(limiter.take()).toBe(false)
    now += 1
    expect(limiter.take()).toBe(true)
    expect(limiter.take()).toBe(false)
    now += 10_000
    allowed = 0
    for (let i = 0; i < 100; i++) if (limiter.take()) allowed++
    expect(allowed).toBe(20)
  })

  it('a clock that steps back mints nothing', () => {
    let now = 5000
    const limiter = createRateLimiter(2, () => now)
    expect(limiter.take() && limiter.take()).toBe(true)
    now -= 3000
    expect(limiter.take()).toBe(false)
  })

  it('refuses a rate that is not a positive number', () => {
    expect(() => createRateLimiter(0)).toThrow(/diagnosesPerSecond/)
    expect(() => createRateLimiter(Number.NaN)).toThrow(/diagnosesPerSecond/)
  })
})

describe('diagnoses are rate-limited', () => {
  it('a flood of forgeries costs at most 20 diagnoses a second: the variants run for 20, the rest get no hint and no RSA verify', () => {
    const pair = testKeyPair(512)
    const keyUrl = 'http://127.0.0.1:9/k.pem'
    const keys = new KeyProvider({ pinned: new Map([[keyUrl, pair.publicKey]]) })
    let verifies = 0
    let now = 0
    const diagnostics = createDiagnostics({
      keys,
      keyOrigins: ['http://127.0.0.1:9'],
      now: () => now,
      signatureVerifier: (key, data, sig) => { verifies++; return verifyWithNodeCrypto(key, data, sig) }
    })
    const forged = signedCallback({ url: '/cb', signedUrl: '/other', keyUrl, privateKey: pair.privateKey })
    const request: RefusedRequest = { method: 'POST', url: forged.url, headers: forged.headers, body: forged.body }
    const hints: Array<string | undefined> = []
    for (let i = 0; i < 200; i++) hints.push(diagnostics.explain(ossError('SIGNATURE_MISMATCH'), request))
    expect(hints.filter((h) => h !== undefined)).toHaveLength(20)
    const perDiagnosis = verifies / 20
    expect(perDiagnosis).toBeGreaterThan(0)
    expect(perDiagnosis).toBeLessThanOrEqual(10)
    now += 1000
    expect(diagnostics.explain(ossError('SIGNATURE_MISMATCH'), request)).toBeDefined()
    // Diagnoses read the key without counting lookups: the key metrics show callbacks only.
    expect(keys.stats).toMatchObject({ pinnedHits: 0, cacheHits: 0, cacheMisses: 0 })
  })
})
