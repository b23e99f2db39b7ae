import type { KeyObject } from 'node:crypto'
import { parsePublicKeyPem } from '../protocol/signature.js'

/**
 * OSS's production callback key (RSA 512-bit, e=65537), as served at
 * http(s)://gosspublic.alicdn.com/callback_pub_key_v1.pem. Shipped in the
 * package so that real callbacks verify with no network at all.
 */
export const OSS_CALLBACK_PUBLIC_KEY_V1_PEM = `-----BEGIN PUBLIC KEY-----
MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKs/JBGzwUB2aVht4crBx3oIPBLNsjGs
C0fTXv+nvlmklvkcolvpvXLTjaxUHR3W9LXxQ2EHXAJfCB+6H2YF1k8CAwEAAQ==
-----END PUBLIC KEY-----
`

/** The URLs the production key is pinned for. */
export const OSS_CALLBACK_PUBLIC_KEY_V1_URLS: readonly string[] = Object.freeze([
  'https://gosspublic.alicdn.com/callback_pub_key_v1.pem',
  'http://gosspublic.alicdn.com/callback_pub_key_v1.pem'
])

/** Key URL to parsed key; built once. */
export function defaultPinnedKeys (): Map<string, KeyObject> {
  const key = parsePublicKeyPem(OSS_CALLBACK_PUBLIC_KEY_V1_PEM)
  return new Map(OSS_CALLBACK_PUBLIC_KEY_V1_URLS.map((url) => [url, key]))
}
