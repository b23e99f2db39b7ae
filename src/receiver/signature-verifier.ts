import { createHash, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'
import type forgeTypes from 'node-forge'
import { decodeStrictBase64 } from '../protocol/base64.js'
import { modulusBytes, verifyWithNodeCrypto } from '../protocol/signature.js'
import { buildStringToSign, splitRequestTarget } from '../protocol/string-to-sign.js'
import { ossError } from '../errors.js'
import { OSS_CALLBACK_PUBLIC_KEY_V1_PEM } from '../keys/pinned.js'
import { parsePublicKeyPem } from '../protocol/signature.js'
import { OSS_DOC_CALLBACK } from './self-test-callback.js'

/** Checks an RSA-MD5 PKCS#1 v1.5 signature. Throws only when the algorithm itself is refused. */
export type SignatureVerifier = (key: KeyObject, data: Uint8Array, signature: Uint8Array) => boolean

/** Which implementation verifies signatures. */
export type VerifierName = 'node:crypto' | 'node-forge'

/** node:crypto on pre-parsed `KeyObject`s: the fast path. */
export const nodeCryptoVerifier: SignatureVerifier = verifyWithNodeCrypto

/**
 * A pure-JS verifier (node-forge) for OpenSSL builds that refuse MD5 or 512-bit
 * RSA. Forge keys are converted once per `KeyObject`.
 */
export function createForgeVerifier (): SignatureVerifier {
  // Loaded here, not at the top: most hosts pass the self-test with node:crypto, and node-forge
  // is a large module an `import 'oss-callback'` should not pay for. It is CommonJS, so require is synchronous.
  const forge = createRequire(import.meta.url)('node-forge') as typeof forgeTypes
  const forgeKeys = new WeakMap<KeyObject, forgeTypes.pki.rsa.PublicKey>()
  return (key, data, signature) => {
    if (signature.length !== modulusBytes(key)) return false
    let forgeKey = forgeKeys.get(key)
    if (forgeKey === undefined) {
      forgeKey = forge.pki.publicKeyFromPem(key.export({ type: 'spki', format: 'pem' }).toString()) as forgeTypes.pki.rsa.PublicKey
      forgeKeys.set(key, forgeKey)
    }
    // The digest comes from node:crypto when it can; forge's own MD5 otherwise.
    let digest: string
    try {
      digest = createHash('md5').update(data).digest('binary')
    } catch {
      const md = forge.md.md5.create()
      md.update(Buffer.from(data).toString('binary'))
      digest = md.digest().bytes()
    }
    try {
      return forgeKey.verify(digest, Buffer.from(signature).toString('binary'))
    } catch {
      return false
    }
  }
}

/** True when `verifier` accepts OSS's documented callback with the production key. */
export function passesSelfTest (verifier: SignatureVerifier): boolean {
  try {
    const key = parsePublicKeyPem(OSS_CALLBACK_PUBLIC_KEY_V1_PEM)
    const data = buildStringToSign(splitRequestTarget(OSS_DOC_CALLBACK.url), Buffer.from(OSS_DOC_CALLBACK.body))
    const signature = decodeStrictBase64(OSS_DOC_CALLBACK.headers.authorization, 1024)
    return verifier(key, data, signature) && !verifier(key, Buffer.concat([data, Buffer.from('x')]), signature)
  } catch {
    return false
  }
}

/** The verifier chosen at start-up. */
export interface SelectedVerifier {
  verify: SignatureVerifier
  name: VerifierName
}

/**
 * The start-up self-test: node:crypto if it verifies a real OSS callback,
 * node-forge where OpenSSL refuses (FIPS or hardened policies). Throws
 * `OSS_CB_ERR_SELF_TEST_FAILED` when neither does.
 */
export function selectSignatureVerifier (native: SignatureVerifier = nodeCryptoVerifier): SelectedVerifier {
  if (passesSelfTest(native)) return { verify: native, name: 'node:crypto' }
  const fallback = createForgeVerifier()
  if (passesSelfTest(fallback)) return { verify: fallback, name: 'node-forge' }
  throw ossError('SELF_TEST_FAILED', 'neither node:crypto nor node-forge verified the known OSS callback')
}
