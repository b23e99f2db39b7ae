import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isOssCallbackError } from '../../src/errors.js'
import { buildStringToSign, percentDecodePath, splitRequestTarget } from '../../src/protocol/string-to-sign.js'
import { fuzzRuns, propertyTimeout } from '../helpers/fuzz.js'

const RUNS = fuzzRuns(1_000)

/** Request targets, biased towards `/`, `?`, `%` and hex digits. */
const target = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'/?%&=+#aZ09fF. \u00e9'), maxLength: 60 }),
  fc.string({ maxLength: 80 }).map((s) => `/${s}`),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 60 })
)
const body = fc.uint8Array({ maxLength: 200 })

function percentEncodeAll (bytes: Uint8Array): string {
  return [...bytes].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('')
}

describe('buildStringToSign (property)', () => {
  it('returns bytes or throws OSS_CB_ERR_BAD_REQUEST_TARGET, for any target and body', () => {
    fc.assert(fc.property(target, body, (t, b) => {
      try {
        const data = buildStringToSign(splitRequestTarget(t), b)
        expect(Buffer.isBuffer(data)).toBe(true)
      } catch (err) {
        expect(isOssCallbackError(err)).toBe(true)
        expect((err as { code: string }).code).toBe('OSS_CB_ERR_BAD_REQUEST_TARGET')
      }
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('is decoded path, "?" + raw query only when there is a query, one LF, then the body bytes', () => {
    fc.assert(fc.property(target.map((t) => `/${t}`), body, (t, b) => {
      const split = splitRequestTarget(t)
      const data = buildStringToSign(split, b)
      const q = t.indexOf('?')
      const path = q === -1 ? t : t.slice(0, q)
      const query = q === -1 ? '' : t.slice(q + 1)
      expect(split).toEqual({ path, query })
      const head = Buffer.concat([percentDecodePath(path), query === '' ? Buffer.alloc(0) : Buffer.from(`?${query}`)])
      expect(data).toEqual(Buffer.concat([head, Buffer.from('\n'), Buffer.from(b)]))
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('decodes a fully percent-encoded path back to its bytes, exactly once', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      expect(percentDecodePath(`/${percentEncodeAll(bytes)}`)).toEqual(Buffer.concat([Buffer.from('/'), Buffer.from(bytes)]))
      // A second round would turn "%2541" into "A": the result must still hold "%41".
      expect(percentDecodePath(`/${percentEncodeAll(Buffer.from(percentEncodeAll(bytes)))}`).toString('latin1'))
        .toBe(`/${percentEncodeAll(bytes)}`)
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))
})
