import fc from 'fast-check'
import { Webhook } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'
import { createSigner } from '../../src/delivery/sign.js'
import { fuzzRuns, propertyTimeout } from '../helpers/fuzz.js'

const secretOf = (bytes: Uint8Array): string => 'whsec_' + Buffer.from(bytes).toString('base64')

describe('createSigner', () => {
  it('signs byte for byte as standardwebhooks does, and its signatures verify with Webhook.verify', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.string({ minLength: 1, maxLength: 40 }),
      fc.integer({ min: 0, max: 4_000_000_000 }),
      fc.oneof(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.json()),
      (bytes, id, seconds, body) => {
        const secret = secretOf(bytes)
        const signature = createSigner(secret)(id, seconds, body)
        expect(signature).toBe(new Webhook(secret).sign(id, new Date(seconds * 1000), body))
      }), { numRuns: fuzzRuns(300) })

    const secret = secretOf(Buffer.alloc(32, 7))
    const now = Math.floor(Date.now() / 1000)
    const body = JSON.stringify({ type: 'oss.callback.verified', data: { object: 'photos/猫 🐈.jpg' } })
    const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(now), 'webhook-signature': createSigner(secret)('evt_1', now, body) }
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body))
    expect(() => new Webhook(secretOf(Buffer.alloc(32, 8))).verify(body, headers)).toThrow()
  }, propertyTimeout(20_000))

  it('takes a secret without the whsec_ prefix, and refuses one standardwebhooks refuses', () => {
    const raw = Buffer.alloc(24, 3).toString('base64')
    expect(createSigner(raw)('a', 1, 'x')).toBe(new Webhook(raw).sign('a', new Date(1000), 'x'))
    expect(() => createSigner('whsec_')).toThrow()
    expect(() => createSigner('whsec_not*base64')).toThrow()
  })
})
