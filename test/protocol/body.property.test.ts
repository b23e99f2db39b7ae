import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { isOssCallbackError } from '../../src/errors.js'
import { parseCallbackBody, SYSTEM_VARIABLES, type ParsedCallbackBody } from '../../src/protocol/body.js'
import { fuzzRuns, propertyTimeout } from '../helpers/fuzz.js'

const RUNS = fuzzRuns(1_000)
const NAMES = [...Object.keys(SYSTEM_VARIABLES), 'x:a', 'x:__proto__', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'imageInfo', 'x:', 'a b', 'é']

const formText = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 8 })), fc.string({ maxLength: 12 }), fc.constantFrom('=', '', '=='),
    fc.constantFrom('', '%', '%zz', '%C3', '+', '%20'))
    .map(([n, v, eq, junk]) => `${n}${eq}${v}${junk}`),
  { maxLength: 8 }
).map((parts) => parts.join('&'))

const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 6 })), tie('value'), { maxKeys: 4 }))
})).value

const anyBody = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  formText.map((s) => new TextEncoder().encode(s)),
  jsonValue.map((v) => new TextEncoder().encode(JSON.stringify(v))),
  fc.string({ maxLength: 100 }).map((s) => new TextEncoder().encode(s)),
  fc.nat({ max: 3000 }).map((n) => new TextEncoder().encode(`${'['.repeat(n)}${n % 2 === 0 ? ']'.repeat(n) : ''}`))
)

function expectWellTyped (parsed: ParsedCallbackBody): void {
  expect(Object.getPrototypeOf(parsed.fields)).toBe(null)
  expect(Object.getPrototypeOf(parsed.vars)).toBe(null)
  for (const [name, type] of Object.entries(SYSTEM_VARIABLES)) {
    const value = name.startsWith('imageInfo.') ? parsed.system.imageInfo[name.slice(10) as 'height'] : parsed.system[name as 'bucket']
    if (value !== undefined) expect(typeof value).toBe(type)
    if (typeof value === 'string') expect(value).not.toBe('')
    if (typeof value === 'number') expect(Number.isSafeInteger(value) && value >= 0).toBe(true)
  }
  for (const [k, v] of Object.entries(parsed.vars)) {
    expect(k.startsWith('x:')).toBe(true)
    expect(typeof v).toBe('string')
  }
}

describe('parseCallbackBody (property)', () => {
  afterAll(() => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.keys(Object.prototype)).toEqual([])
  })

  it('returns typed fields or throws OSS_CB_ERR_BODY_UNPARSEABLE, for any bytes and either type', () => {
    fc.assert(fc.property(anyBody, fc.constantFrom('form' as const, 'json' as const), (bytes, type) => {
      try {
        expectWellTyped(parseCallbackBody(bytes, type))
      } catch (err) {
        expect(isOssCallbackError(err)).toBe(true)
        expect((err as { code: string }).code).toBe('OSS_CB_ERR_BODY_UNPARSEABLE')
      }
      expect(Object.keys(Object.prototype)).toEqual([])
    }), { numRuns: RUNS })
  }, propertyTimeout(60_000))

  it('reads back every urlencoded field, whether a space came as + or %20', () => {
    const fields = fc.uniqueArray(fc.tuple(fc.oneof(fc.constantFrom(...NAMES), fc.string({ minLength: 1, maxLength: 8 })), fc.string({ maxLength: 16 })), { selector: ([n]) => n, maxLength: 8 })
    fc.assert(fc.property(fields, fc.boolean(), (pairs, plus) => {
      const enc = (s: string): string => plus ? encodeURIComponent(s).replaceAll('%20', '+') : encodeURIComponent(s)
      const text = pairs.map(([n, v]) => `${enc(n)}=${enc(v)}`).join('&')
      const parsed = parseCallbackBody(Buffer.from(text), 'form')
      expect({ ...parsed.fields }).toEqual(Object.fromEntries(pairs.map(([n, v]) => [n, v])))
      for (const [n] of pairs) expect(Object.hasOwn(parsed.fields, n)).toBe(true)
      expectWellTyped(parsed)
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('reads back every JSON object field, own keys only, including __proto__ and constructor', () => {
    fc.assert(fc.property(fc.dictionary(fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 8 })), jsonValue, { maxKeys: 8 }), (object) => {
      const text = JSON.stringify(object)
      const parsed = parseCallbackBody(Buffer.from(text), 'json')
      expect(JSON.stringify(parsed.fields)).toBe(JSON.stringify(JSON.parse(text)))
      expectWellTyped(parsed)
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))
})
