import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { isOssCallbackError } from '../../src/errors.js'
import { KeyProvider } from '../../src/keys/provider.js'
import { signCallback } from '../../src/protocol/signature.js'
import { buildStringToSign, splitRequestTarget } from '../../src/protocol/string-to-sign.js'
import { createForgeVerifier, nodeCryptoVerifier } from '../../src/receiver/signature-verifier.js'
import { createCallbackVerifier, type CallbackVerifier } from '../../src/receiver/verify.js'
import { fuzzRuns, propertyTimeout } from '../helpers/fuzz.js'

// Odd sizes too: a signature is ceil(bits / 8) bytes, whatever the modulus length.
const POOL_BITS = [512, 520, 768, 1024, 1031, 1536, 2048]
const ORIGIN = 'http://127.0.0.1:9'

interface PoolKey { bits: number, privateKey: KeyObject, publicKey: KeyObject, url: string }
let pool: PoolKey[] = []
let verifier: CallbackVerifier
const forgeVerify = createForgeVerifier()

beforeAll(() => {
  pool = POOL_BITS.map((bits, i) => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 })
    return { bits, privateKey, publicKey, url: `${ORIGIN}/k${i}.pem` }
  })
  verifier = createCallbackVerifier({
    keyOrigins: [ORIGIN],
    keys: new KeyProvider({
      pinned: new Map(pool.map((k) => [k.url, k.publicKey])),
      fetch: () => Promise.reject(new Error('no fetch in property tests'))
    })
  })
}, 60_000)

const pathChars = fc.constantFrom(...'abcXYZ019-._~/%+!$&\'()*,;=:@é')
const path = fc.string({ unit: pathChars, maxLength: 40 }).map((s) => `/${s}`)
const query = fc.oneof(fc.constant(''), fc.string({ unit: fc.constantFrom(...'ab12=&%+/?é '), minLength: 1, maxLength: 40 }))
const body = fc.uint8Array({ maxLength: 300 })
const keyIndex = fc.nat({ max: POOL_BITS.length - 1 })

type Part = 'path' | 'query' | 'body' | 'signature-bytes' | 'signature-text'

/** A copy of `bytes` with the byte at `at` (modulo the length) set to `value`. */
function replaceByte (bytes: Uint8Array, at: number, value: number): Buffer {
  const out = Buffer.from(bytes)
  out[at % out.length] = value
  return out
}

const HEX = /^[0-9a-fA-F]$/
/** `%4a` and `%4A` are the same byte once decoded: OSS signs the decoded path, so that change is not a change. */
function sameDecodedHex (before: number, after: number): boolean {
  const a = String.fromCharCode(before)
  const b = String.fromCharCode(after)
  return HEX.test(a) && HEX.test(b) && a.toLowerCase() === b.toLowerCase()
}

/** Verifies a form callback; 'ok' or the coded error's code. */
async function verdict (url: string, signature: string, keyUrl: string, rawBody: Buffer): Promise<string> {
  try {
    await verifier.verify({
      url,
      headers: { authorization: signature, 'x-oss-pub-key-url': Buffer.from(keyUrl).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' },
      body: rawBody
    })
    return 'ok'
  } catch (err) {
    expect(isOssCallbackError(err)).toBe(true)
    return (err as { code: string }).code
  }
}

describe('signature verification (property)', () => {
  it('verifies what was signed, and fails on any one-byte change of path, query, body or signature', async () => {
    await fc.assert(fc.asyncProperty(
      keyIndex, path, query, body, fc.constantFrom<Part>('path', 'query', 'body', 'signature-bytes', 'signature-text'), fc.nat(), fc.integer({ min: 0, max: 255 }),
      async (k, p, q, b, part, at, value) => {
        const key = pool[k] as PoolKey
        const url = q === '' ? p : `${p}?${q}`
        const raw: Buffer = Buffer.from(b)
        const signature = signCallback(key.privateKey, buildStringToSign(splitRequestTarget(url), raw))
        const good = await verdict(url, signature, key.url, raw)
        // A verified body may still not parse as a form (invalid UTF-8): that is its own code, after the signature check.
        expect(['ok', 'OSS_CB_ERR_BODY_UNPARSEABLE']).toContain(good)

        let mUrl = url
        let mSig = signature
        let mBody: Buffer = raw
        if (part === 'path' || part === 'query') {
          const bytes = Buffer.from(part === 'path' ? p : q, 'utf8')
          fc.pre(bytes.length > 0)
          const i = at % bytes.length
          fc.pre(bytes[i] !== value && !sameDecodedHex(bytes[i] as number, value))
          // Node hands a server the request target as latin1 text of the bytes on the wire; keep changes ASCII so the text is the bytes.
          fc.pre(value >= 0x21 && value < 0x7f && (bytes[i] as number) < 0x80)
          const changed = replaceByte(bytes, i, value).toString('utf8')
          fc.pre(!(part === 'query' && changed.length === 0))
          mUrl = part === 'path' ? (q === '' ? changed : `${changed}?${q}`) : `${p}?${changed}`
          // A "?" written into the path moves the split: the bytes then differ in another way, which must fail too.
        } else if (part === 'body') {
          fc.pre(raw.length > 0)
          fc.pre(raw[at % raw.length] !== value)
          mBody = replaceByte(raw, at, value)
        } else if (part === 'signature-bytes') {
          const sig = Buffer.from(signature, 'base64')
          fc.pre(sig[at % sig.length] !== value)
          mSig = replaceByte(sig, at, value).toString('base64')
        } else {
          const chars = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=']
          const c = chars[value % chars.length] as string
          const i = at % signature.length
          fc.pre(signature[i] !== c)
          mSig = signature.slice(0, i) + c + signature.slice(i + 1)
        }
        const bad = await verdict(mUrl, mSig, key.url, mBody)
        expect(bad).not.toBe('ok')
        expect(bad).not.toBe('OSS_CB_ERR_BODY_UNPARSEABLE')
      }), { numRuns: fuzzRuns(1_000) })
  }, propertyTimeout(60_000))

  it('node:crypto and the node-forge fallback agree on every message, key and signature', () => {
    fc.assert(fc.property(
      keyIndex, fc.uint8Array({ maxLength: 400 }), fc.constantFrom('valid', 'flipped', 'random', 'short', 'long', 'zero'), fc.nat(),
      (k, message, kind, at) => {
        const key = pool[k] as PoolKey
        const valid = Buffer.from(signCallback(key.privateKey, message), 'base64')
        let sig: Buffer
        switch (kind) {
          case 'valid': sig = valid; break
          case 'flipped': sig = Buffer.from(valid); sig[at % sig.length] = (sig[at % sig.length] as number) ^ (1 << (at % 8)); break
          case 'random': sig = Buffer.from(valid.map((b, i) => (b * 31 + i + at) & 0xff)); break
          case 'short': sig = valid.subarray(1); break
          case 'long': sig = Buffer.concat([Buffer.alloc(1), valid]); break
          default: sig = Buffer.alloc(valid.length)
        }
        const native = nodeCryptoVerifier(key.publicKey, message, sig)
        const fallback = forgeVerify(key.publicKey, message, sig)
        expect(fallback).toBe(native)
        expect(native).toBe(kind === 'valid')
      }), { numRuns: fuzzRuns(1_000) })
  }, propertyTimeout(60_000))

  it('a signature made for one key never verifies with another key of the pool', async () => {
    await fc.assert(fc.asyncProperty(keyIndex, keyIndex, body, async (signer, claimed, b) => {
      fc.pre(signer !== claimed)
      const url = '/oss/callback'
      const raw = Buffer.from(b)
      const signature = signCallback((pool[signer] as PoolKey).privateKey, buildStringToSign(splitRequestTarget(url), raw))
      expect(await verdict(url, signature, (pool[claimed] as PoolKey).url, raw)).toBe('OSS_CB_ERR_SIGNATURE_MISMATCH')
    }), { numRuns: fuzzRuns(500) })
  }, propertyTimeout(60_000))
})
