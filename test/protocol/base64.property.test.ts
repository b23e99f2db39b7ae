import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isOssCallbackError } from '../../src/errors.js'
import { decodeStrictBase64 } from '../../src/protocol/base64.js'
import { fuzzRuns, propertyTimeout } from '../helpers/fuzz.js'

const RUNS = fuzzRuns(1_000)
const B64_CHARS = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n%.']

/** Strings near the base64 alphabet, so that many are almost valid. */
const nearBase64 = fc.oneof(
  fc.string({ unit: fc.constantFrom(...B64_CHARS), maxLength: 120 }),
  fc.string({ maxLength: 120 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.uint8Array({ maxLength: 90 }).map((b) => Buffer.from(b).toString('base64')),
  fc.uint8Array({ minLength: 1, maxLength: 90 }).map((b) => Buffer.from(b).toString('base64url'))
)

describe('decodeStrictBase64 (property)', () => {
  it('returns bytes or throws OSS_CB_ERR_BAD_BASE64, for any string and limit', () => {
    fc.assert(fc.property(nearBase64, fc.integer({ min: 0, max: 200 }), (text, max) => {
      try {
        const bytes = decodeStrictBase64(text, max)
        expect(Buffer.isBuffer(bytes)).toBe(true)
      } catch (err) {
        expect(isOssCallbackError(err)).toBe(true)
        expect((err as { code: string }).code).toBe('OSS_CB_ERR_BAD_BASE64')
      }
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('decodes every canonical encoding back to its bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (bytes) => {
      const text = Buffer.from(bytes).toString('base64')
      expect(decodeStrictBase64(text, text.length)).toEqual(Buffer.from(bytes))
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('accepts a string only if it is the canonical encoding of what it decodes to (one header value, one meaning)', () => {
    fc.assert(fc.property(nearBase64, (text) => {
      let bytes: Buffer
      try {
        bytes = decodeStrictBase64(text, 1000)
      } catch {
        return
      }
      expect(bytes.length).toBeGreaterThan(0)
      expect(bytes.toString('base64')).toBe(text)
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('refuses any one-character change that is not itself canonical base64 of other bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 100 }), fc.nat(), fc.constantFrom(...B64_CHARS), (bytes, at, ch) => {
      const text = Buffer.from(bytes).toString('base64')
      const i = at % text.length
      fc.pre(text[i] !== ch)
      const changed = text.slice(0, i) + ch + text.slice(i + 1)
      let decoded: Buffer | undefined
      try { decoded = decodeStrictBase64(changed, 1000) } catch { decoded = undefined }
      if (decoded !== undefined) {
        expect(decoded.equals(Buffer.from(bytes))).toBe(false)
        expect(decoded.toString('base64')).toBe(changed)
      }
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))
})
