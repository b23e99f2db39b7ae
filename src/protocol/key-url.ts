import { invalidOption, ossError } from '../errors.js'
import { decodeStrictBase64 } from './base64.js'

/** The production origins OSS serves its callback public key from. */
export const DEFAULT_KEY_ORIGINS: readonly string[] = Object.freeze([
  'https://gosspublic.alicdn.com',
  'http://gosspublic.alicdn.com'
])

/** The production key host: it serves https, so an unpinned key there is never fetched in clear text. */
export const PRODUCTION_KEY_HOST = 'gosspublic.alicdn.com'

/** A compiled allowlist of key origins. */
export interface KeyUrlPolicy {
  /** Canonical origins (`scheme://host[:port]`), as `URL#origin` prints them. */
  readonly origins: ReadonlySet<string>
}

// One path segment ending in .pem: OSS's own is /callback_pub_key_v1.pem.
const KEY_PATH = /^\/[A-Za-z0-9._-]+\.pem$/
const MAX_KEY_URL_CHARS = 2048
/** The longest `x-oss-pub-key-url` header accepted, in base64 characters (the URL cap, encoded). */
export const MAX_KEY_URL_B64_CHARS = 2732
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/

/**
 * Compiles origins such as `https://gosspublic.alicdn.com` or `http://127.0.0.1:8090`.
 * Throws `OSS_CB_ERR_INVALID_OPTION` for anything that is not a bare http(s) origin.
 */
export function compileKeyUrlPolicy (origins: readonly string[]): KeyUrlPolicy {
  if (origins.length === 0) throw invalidOption('keyOrigins must name at least one origin')
  const set = new Set<string>()
  for (const text of origins) {
    let url: URL
    try {
      url = new URL(text)
    } catch {
      throw invalidOrigin(text)
    }
    const bare = url.origin
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '' ||
        url.search !== '' || url.hash !== '' || (url.pathname !== '/' && url.pathname !== '') ||
        (text !== bare && text !== `${bare}/`)) {
      throw invalidOrigin(text)
    }
    set.add(bare)
  }
  return { origins: set }
}

function invalidOrigin (text: string): Error {
  return invalidOption(`keyOrigins: ${JSON.stringify(text.slice(0, 200))} is not a bare http(s) origin such as https://gosspublic.alicdn.com (lower case, no path, no userinfo, no default port)`)
}

/**
 * Checks a decoded `x-oss-pub-key-url` against the policy by parsing it, never by
 * string prefix. The URL must also be canonical: it must read exactly as the
 * WHATWG parser prints it back. That one rule refuses upper case, trailing dots,
 * default ports, backslashes, percent-encoded dots, `..` segments and IDN forms,
 * each of which could otherwise make one allowed origin look like another.
 * Returns the parsed URL.
 */
export function checkKeyUrl (text: string, policy: KeyUrlPolicy): URL {
  if (text.length > MAX_KEY_URL_CHARS) throw ossError('KEY_URL_NOT_ALLOWED', 'key URL too long')
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw ossError('KEY_URL_NOT_ALLOWED', 'key URL does not parse')
  }
  if (url.href !== text) throw ossError('KEY_URL_NOT_ALLOWED', 'key URL is not canonical')
  if (url.username !== '' || url.password !== '') throw ossError('KEY_URL_NOT_ALLOWED', 'key URL has userinfo')
  if (!policy.origins.has(url.origin)) throw ossError('KEY_URL_NOT_ALLOWED', 'key URL origin is not allowed')
  if (url.search !== '' || url.hash !== '' || !KEY_PATH.test(url.pathname)) {
    throw ossError('KEY_URL_NOT_ALLOWED', 'key URL path is not /<name>.pem')
  }
  return url
}

/** Decodes `x-oss-pub-key-url` and checks it against the policy; returns the canonical URL. */
export function checkKeyUrlHeader (header: string, policy: KeyUrlPolicy): string {
  const text = decodeStrictBase64(header, MAX_KEY_URL_B64_CHARS).toString('latin1')
  if (!PRINTABLE_ASCII.test(text)) throw ossError('KEY_URL_NOT_ALLOWED', 'key URL has non-printable bytes')
  return checkKeyUrl(text, policy).href
}
