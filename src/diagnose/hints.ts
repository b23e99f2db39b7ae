import { isOssCallbackError, type OssCallbackError } from '../errors.js'
import { decodeStrictBase64 } from '../protocol/base64.js'
import { checkKeyUrl, DEFAULT_KEY_ORIGINS, MAX_KEY_URL_B64_CHARS, PRODUCTION_KEY_HOST, type KeyUrlPolicy } from '../protocol/key-url.js'
import { ORIGINAL_URI_HEADERS, FORWARDED_PREFIX_HEADER } from './variants.js'
import { shown } from './text.js'

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>

/** What the hints without a verify look at. */
export interface RefusalFacts {
  /** The HTTP method. */
  method: string
  headers: Headers
  /** The key URL policy the receiver applies. */
  policy: KeyUrlPolicy
  /** The body limit in bytes, when known. */
  bodyLimitBytes?: number | undefined
}

/** Key paths served by `oss-callback sim` (src/sim/server.ts): one per simulator key. */
const SIM_KEY_PATH = /^\/callback_pub_key_sim_[0-9a-f]{16}\.pem$/

function present (value: string | readonly string[] | undefined): boolean {
  return value !== undefined && value !== '' && !(Array.isArray(value) && value.length === 0)
}

/** The hint for `Authorization` missing while `x-oss-pub-key-url` came: a middlebox dropped it. */
export const AUTHORIZATION_DROPPED_HINT =
  'The Authorization header is missing while x-oss-pub-key-url is present: a proxy, CGI (PHP-FPM, Apache) or API gateway ' +
  'in front dropped it, since OSS always sends both. Pass Authorization through (Apache: CGIPassAuth On; ' +
  'API gateways: forward all headers)'

/** The hint for a GET (or HEAD) on the callback path. */
export const GET_ON_CALLBACK_PATH_HINT =
  'A GET on the callback path: OSS posts callbacks, so this request is not one (a browser, a health check or a ' +
  'crawler). If you expected a callback here, the route is wrong; point health checks at another path'

/** The hint for a content type that is neither form nor JSON. */
export const CONTENT_TYPE_HINT =
  'The content type is neither application/x-www-form-urlencoded nor application/json. OSS sends the callback\'s ' +
  'callbackBodyType: set callbackBodyType to one of those two (or leave it out for form), or find what in front changes Content-Type'

/** The general hint for a mismatch that nothing the receiver sees explains. */
export const GENERAL_HINT =
  'No single change explains the mismatch. If a proxy rewrites the path, set OSS_CALLBACK_PUBLIC_PATH (publicPath) ' +
  'to the callbackUrl\'s path; if the app parses the body before verifying, give the verifier the raw bytes. ' +
  'Otherwise the callback was signed for something else or forged'

/** The hint for a body over the limit. */
export function bodyTooLargeHint (limit: number | undefined): string {
  const size = limit === undefined ? 'the body limit' : `the body limit of ${limit} bytes`
  return `The body is over ${size}: the callbackBody (with its custom x: variables) expands to more than that. ` +
    'Raise OSS_CALLBACK_BODY_LIMIT_BYTES (bodyLimitBytes), or send less in callbackBody'
}

/** The hint after a mismatch when proxy headers were present but no variant verified. */
export function noVariantHint (headers: Headers): string {
  const seen = [FORWARDED_PREFIX_HEADER, ...ORIGINAL_URI_HEADERS].filter((n) => present(headers[n]))
  if (seen.length === 0) return GENERAL_HINT
  return `No single change explains the mismatch, not even the path in ${seen.join(', ')}. ` +
    'If the app parses the body before verifying, give the verifier the raw bytes; otherwise the callback was signed ' +
    'for something else or forged'
}

/** Why a key URL was refused, and what to do: add an origin only for OSS's own key host or a simulator. */
export function keyUrlHint (header: string | readonly string[] | undefined, policy: KeyUrlPolicy): string {
  const setting = 'OSS_CALLBACK_KEY_ORIGINS (keyOrigins)'
  if (typeof header !== 'string') return `The key URL was refused. ${setting} lists the origins keys may come from`
  let text: string
  let url: URL
  try {
    text = decodeStrictBase64(header, MAX_KEY_URL_B64_CHARS).toString('latin1')
    url = new URL(text)
  } catch {
    return `The key URL in x-oss-pub-key-url does not decode to a URL: OSS never sends that, so the callback is likely forged. Leave ${setting} as it is`
  }
  const origin = url.origin
  if (url.hostname === PRODUCTION_KEY_HOST) {
    if (DEFAULT_KEY_ORIGINS.includes(origin) && !policy.origins.has(origin)) {
      return `The key URL is on OSS's own key host (${origin}), which ${setting} leaves out: add ${origin} to ${setting}`
    }
    return `The key URL names OSS's key host but breaks the key URL rule (${ruleBroken(text, policy)}); OSS itself sends ` +
      `https://${PRODUCTION_KEY_HOST}/callback_pub_key_v1.pem, so the callback is likely forged. Leave ${setting} as it is`
  }
  if (SIM_KEY_PATH.test(url.pathname) && (url.protocol === 'http:' || url.protocol === 'https:')) {
    return `The key URL is an oss-callback simulator's (${shown(origin)}): to accept this simulator's callbacks in a test ` +
      `setup, add ${shown(origin)} to ${setting}. Never in production`
  }
  return `The key URL names ${shown(origin, 120)}, which is neither OSS's key host nor a simulator's: the callback is ` +
    `likely forged. Do not add it to ${setting}`
}

function ruleBroken (text: string, policy: KeyUrlPolicy): string {
  try {
    checkKeyUrl(text, policy)
    return 'none'
  } catch (err) {
    return isOssCallbackError(err) && err.reason !== undefined ? err.reason : 'refused'
  }
}

/**
 * The hint for a refusal that needs no RSA verify, or `undefined` when this
 * refusal has none (a signature mismatch is explained by the variants instead).
 */
export function hintWithoutVerify (error: OssCallbackError, facts: RefusalFacts): string | undefined {
  switch (error.code) {
    case 'OSS_CB_ERR_MISSING_HEADER':
      return !present(facts.headers.authorization) && present(facts.headers['x-oss-pub-key-url']) ? AUTHORIZATION_DROPPED_HINT : undefined
    case 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED':
      return keyUrlHint(facts.headers['x-oss-pub-key-url'], facts.policy)
    case 'OSS_CB_ERR_METHOD_NOT_ALLOWED':
      return facts.method === 'GET' || facts.method === 'HEAD' ? GET_ON_CALLBACK_PATH_HINT : undefined
    case 'OSS_CB_ERR_UNSUPPORTED_MEDIA_TYPE':
      return CONTENT_TYPE_HINT
    case 'OSS_CB_ERR_BODY_TOO_LARGE':
      return bodyTooLargeHint(facts.bodyLimitBytes)
    default:
      return undefined
  }
}
