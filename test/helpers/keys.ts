import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { buildStringToSign, splitRequestTarget } from '../../src/protocol/string-to-sign.js'
import { signCallback } from '../../src/protocol/signature.js'

/** An RSA key pair for signing test callbacks. */
export interface TestKeyPair {
  bits: number
  privateKey: KeyObject
  publicKey: KeyObject
  publicPem: string
}

const pairs = new Map<number, TestKeyPair>()

/** A key pair of `bits` bits, generated once per test process. 512 is OSS's production size. */
export function testKeyPair (bits: 512 | 1024 | 2048 | 3072 | 4096 = 512): TestKeyPair {
  let pair = pairs.get(bits)
  if (pair === undefined) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 })
    pair = { bits, privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
    pairs.set(bits, pair)
  }
  return pair
}

/** What a test sends as a callback. */
export interface SignedCallback {
  url: string
  headers: Record<string, string>
  body: Buffer
}

/** Options of {@link signedCallback}. */
export interface SignedCallbackOptions {
  /** Request target, path and query. Default `/oss/callback`. */
  url?: string
  body?: string | Buffer
  contentType?: string
  /** The key URL put (base64) in `x-oss-pub-key-url`. */
  keyUrl: string
  privateKey: KeyObject
  /** Sign as if OSS had called this target instead (proxy tests). */
  signedUrl?: string
}

/** Builds a callback signed exactly as OSS signs one, with the project's own string-to-sign. */
export function signedCallback (options: SignedCallbackOptions): SignedCallback {
  const url = options.url ?? '/oss/callback'
  const body = Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body ?? 'bucket=b&object=a%2Fb.jpg&size=42')
  const data = buildStringToSign(splitRequestTarget(options.signedUrl ?? url), body)
  return {
    url,
    body,
    headers: {
      authorization: signCallback(options.privateKey, data),
      'x-oss-pub-key-url': Buffer.from(options.keyUrl).toString('base64'),
      'content-type': options.contentType ?? 'application/x-www-form-urlencoded'
    }
  }
}
