import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { ossError } from '../errors.js'

/** The longest `authorization` header accepted, in base64 characters: an 8192-bit signature. */
export const MAX_SIGNATURE_B64_CHARS = 1368

/** OSS signs callbacks with RSA PKCS#1 v1.5 over an MD5 digest. */
export const CALLBACK_SIGNATURE_DIGEST = 'md5'

/**
 * Parses a PEM public key once, so that verification never parses per request.
 * Only RSA keys are accepted: OSS signs with RSA.
 */
export function parsePublicKeyPem (pem: string | Buffer): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey({ key: pem, format: 'pem' })
  } catch (cause) {
    throw ossError('KEY_INVALID', 'not a PEM public key', cause)
  }
  if (key.asymmetricKeyType !== 'rsa') throw ossError('KEY_INVALID', 'not an RSA key')
  return key
}

/** The RSA modulus length of `key`, in bytes: a valid signature has exactly this length. */
export function modulusBytes (key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  return Math.ceil(bits / 8)
}

/**
 * Verifies an OSS callback signature with node:crypto. Throws when OpenSSL
 * refuses the algorithm itself (MD5 or short keys under FIPS or hardened
 * policies), so that the caller can tell "refused" from "does not match".
 */
export function verifyWithNodeCrypto (key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== modulusBytes(key)) return false
  return verify(CALLBACK_SIGNATURE_DIGEST, data, key, signature)
}

/** Signs the string to sign as OSS does; the simulator and tests use it. Returns base64. */
export function signCallback (privateKey: KeyObject, data: Uint8Array): string {
  return sign(CALLBACK_SIGNATURE_DIGEST, data, privateKey).toString('base64')
}
