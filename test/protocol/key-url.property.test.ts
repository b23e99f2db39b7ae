import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isOssCallbackError } from '../../src/errors.js'
import { checkKeyUrl, compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS } from '../../src/protocol/key-url.js'
import { fuzzRuns, propertyTimeout } from '../helpers/fuzz.js'

const RUNS = fuzzRuns(1_000)
const LOCAL_ORIGIN = 'http://127.0.0.1:8090'
const policy = compileKeyUrlPolicy([...DEFAULT_KEY_ORIGINS, LOCAL_ORIGIN])

const SCHEMES = ['https://', 'http://', 'HTTPS://', 'ftp://', 'file://', 'data:', '//', 'https:', 'https:\\\\', '']
const HOSTS = [
  'gosspublic.alicdn.com', 'GOSSPUBLIC.alicdn.com', 'gosspublic.alicdn.com.', 'gosspublic.alicdn.com.evil.example',
  'evil.example', 'x.gosspublic.alicdn.com', 'gosspublic%2ealicdn.com', 'xn--gosspublic-9yb.alicdn.com', 'gosspublіc.alicdn.com',
  '127.0.0.1', '2130706433', '0x7f.0.0.1', '0177.0.0.1', '[::1]', '[::ffff:127.0.0.1]', 'localhost', ''
]
const USERINFO = ['', 'user@', 'user:pass@', 'gosspublic.alicdn.com@', '@']
const PORTS = ['', ':443', ':80', ':8090', ':8091', ':0', ':65536', ':']
const PATHS = [
  '/callback_pub_key_v1.pem', '/k.pem', '/a/../k.pem', '/%2e%2e/k.pem', '/..%2fk.pem', '/k.pem?x=1', '/k.pem#f', '/k.txt',
  '\\k.pem', '/k%2Epem', '/.pem', '', '/', '/k.pem/', '//k.pem', '/k.pem%00', '/ k.pem'
]

/** URLs assembled from pieces known to fool prefix checks, plus arbitrary text. */
const keyUrlText = fc.oneof(
  fc.tuple(fc.constantFrom(...SCHEMES), fc.constantFrom(...USERINFO), fc.constantFrom(...HOSTS), fc.constantFrom(...PORTS), fc.constantFrom(...PATHS))
    .map((parts) => parts.join('')),
  fc.tuple(fc.constantFrom(...SCHEMES), fc.constantFrom(...HOSTS), fc.string({ maxLength: 40 })).map((parts) => parts.join('')),
  fc.webUrl({ withFragments: true, withQueryParameters: true }),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 100 })
)

describe('checkKeyUrl (property)', () => {
  it('returns a URL or throws OSS_CB_ERR_KEY_URL_NOT_ALLOWED, for any text', () => {
    fc.assert(fc.property(keyUrlText, (text) => {
      try {
        checkKeyUrl(text, policy)
      } catch (err) {
        expect(isOssCallbackError(err)).toBe(true)
        expect((err as { code: string }).code).toBe('OSS_CB_ERR_KEY_URL_NOT_ALLOWED')
      }
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('accepts only canonical URLs on an allowed origin with a /<name>.pem path and no userinfo, query or fragment', () => {
    fc.assert(fc.property(keyUrlText, (text) => {
      let url: URL
      try { url = checkKeyUrl(text, policy) } catch { return }
      expect(url.href).toBe(text)
      expect(policy.origins.has(url.origin)).toBe(true)
      expect(url.username + url.password + url.search + url.hash).toBe('')
      expect(url.pathname).toMatch(/^\/[A-Za-z0-9._-]+\.pem$/)
      expect(text.startsWith(`${url.origin}/`)).toBe(true)
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))

  it('accepts every allowed origin with any /<name>.pem path', () => {
    fc.assert(fc.property(
      fc.constantFrom(...policy.origins),
      fc.string({ unit: fc.constantFrom(...'abcXYZ019._-'), minLength: 1, maxLength: 40 }),
      (origin, name) => {
        const text = `${origin}/${name}.pem`
        fc.pre(new URL(text).href === text) // "." and ".." segments are normalised away
        expect(checkKeyUrl(text, policy).href).toBe(text)
      }), { numRuns: RUNS })
  }, propertyTimeout(30_000))
})

describe('compileKeyUrlPolicy (property)', () => {
  it('returns a policy or throws OSS_CB_ERR_INVALID_OPTION, for any list of strings', () => {
    const origin = fc.oneof(
      fc.tuple(fc.constantFrom(...SCHEMES), fc.constantFrom(...USERINFO), fc.constantFrom(...HOSTS), fc.constantFrom(...PORTS), fc.constantFrom('', '/', '/x', '?q', '#f'))
        .map((parts) => parts.join('')),
      fc.webUrl(),
      fc.string({ maxLength: 60 })
    )
    fc.assert(fc.property(fc.array(origin, { maxLength: 4 }), (origins) => {
      try {
        const compiled = compileKeyUrlPolicy(origins)
        for (const o of compiled.origins) {
          const u = new URL(o)
          expect(u.origin).toBe(o)
          expect(['http:', 'https:']).toContain(u.protocol)
        }
        expect(compiled.origins.size).toBeGreaterThan(0)
      } catch (err) {
        expect(isOssCallbackError(err)).toBe(true)
        expect((err as { code: string }).code).toBe('OSS_CB_ERR_INVALID_OPTION')
      }
    }), { numRuns: RUNS })
  }, propertyTimeout(30_000))
})
