import { splitRequestTarget, type SignedTarget } from '../protocol/string-to-sign.js'
import { shown } from './text.js'

/** One explanation of a signature mismatch: the string to sign with one thing changed. */
export interface Variant {
  /** Short stable name, such as `x-original-uri` or `crlf-to-lf`. */
  name: string
  /** What this variant changes, for the diagnose command. */
  change: string
  /** The target to sign, for `buildStringToSign`. */
  target: SignedTarget
  /** The body to sign. */
  body: Uint8Array
  /** The cause and the fix, when this variant verifies. */
  hint: string
}

/** What the variants are built from. */
export interface VariantInput {
  /** The raw request target as received. */
  url: string
  /** Header names in lower case. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>
  /** The raw body as received. */
  body: Uint8Array
  /** The configured public path (`OSS_CALLBACK_PUBLIC_PATH`), if any. */
  publicPath?: string | undefined
}

/** Headers in which proxies pass on the request target the client sent. */
export const ORIGINAL_URI_HEADERS: readonly string[] = ['x-original-uri', 'x-forwarded-uri', 'x-envoy-original-path']
/** The header in which proxies name the prefix they stripped. */
export const FORWARDED_PREFIX_HEADER = 'x-forwarded-prefix'

const MAX_HEADER_TARGET_CHARS = 2048
// A path the public path option would accept: the fix a hint offers must be one the option takes.
const PATH_LIKE = /^\/[^?#\s]*$/

function oneValue (value: string | readonly string[] | undefined): string | undefined {
  if (typeof value === 'string') return value
  return value?.length === 1 ? value[0] : undefined
}

const SET_PUBLIC_PATH = (path: string): string => `Set OSS_CALLBACK_PUBLIC_PATH=${shown(path)} (publicPath)`

/** Why the path OSS signed differs from the one that arrived, and the fix. */
function pathHint (signed: string, arrived: string, source: string): string {
  const head = `OSS signed ${shown(signed)}; the request arrived as ${shown(arrived)}`
  if (signed.length > arrived.length && signed.endsWith(arrived)) {
    const prefix = signed.slice(0, signed.length - arrived.length)
    return `${head}: a proxy strips ${shown(prefix)}${source}. ${SET_PUBLIC_PATH(signed)}`
  }
  return `${head}: a proxy rewrites the path${source}. ${SET_PUBLIC_PATH(signed)}`
}

/**
 * The variants worth one RSA verify each after a mismatch. Each changes exactly
 * one thing in what the verifier signed (publicPath, or the path as received; the
 * query and body as received); none combines two changes, so the work stays bounded
 * and a verifying variant names one cause.
 */
export function variantsOf (input: VariantInput): Variant[] {
  const received = splitRequestTarget(input.url)
  const signedPath = input.publicPath ?? received.path
  const body = input.body
  const out: Variant[] = []
  const withPath = (path: string): SignedTarget => ({ path, query: received.query })

  const prefix = oneValue(input.headers[FORWARDED_PREFIX_HEADER])
  if (prefix !== undefined && prefix.length <= MAX_HEADER_TARGET_CHARS && PATH_LIKE.test(prefix)) {
    const path = prefix.replace(/\/+$/, '') + received.path
    if (path !== signedPath) {
      out.push({
        name: FORWARDED_PREFIX_HEADER,
        change: `path ${shown(path)}: X-Forwarded-Prefix before the path as received`,
        target: withPath(path),
        body,
        hint: pathHint(path, received.path, ' (X-Forwarded-Prefix says so)')
      })
    }
  }

  for (const name of ORIGINAL_URI_HEADERS) {
    const value = oneValue(input.headers[name])
    if (value === undefined || value.length > MAX_HEADER_TARGET_CHARS || !value.startsWith('/')) continue
    const original = splitRequestTarget(value)
    if (original.path === signedPath && original.query === received.query) continue
    const hint = original.query === received.query
      ? pathHint(original.path, received.path, ` (${name} holds the original)`)
      : `OSS signed the target ${shown(value)}; the request arrived as ${shown(input.url)}: a proxy changes the query. ` +
        'Pass the query through unchanged (nginx: proxy_pass with no URI part keeps it)'
    out.push({ name, change: `target ${shown(value)} from ${name}`, target: original, body, hint })
  }

  if (input.publicPath !== undefined && input.publicPath !== received.path) {
    out.push({
      name: 'public-path',
      change: `path ${shown(received.path)} as received, instead of the public path ${shown(input.publicPath)}`,
      target: received,
      body,
      hint: `OSS signed the path as it arrived, ${shown(received.path)}, not OSS_CALLBACK_PUBLIC_PATH=${shown(input.publicPath)}: ` +
        'nothing in front rewrites the path. Unset OSS_CALLBACK_PUBLIC_PATH (publicPath)'
    })
  }

  if (received.query === '') {
    // The verifier signs `/p?` as `/p` (OSS adds "?" only before a query). "%3F" decodes to "?", so
    // the one string-to-sign function builds the variant that kept the empty mark.
    const path = `${signedPath}%3F`
    out.push({
      name: 'empty-query-mark',
      change: `path ${shown(signedPath)} followed by an empty "?"`,
      target: { path, query: '' },
      body,
      hint: `The signature covers ${shown(signedPath)}? with an empty query mark, which OSS does not sign: ` +
        'the callbackUrl ends in "?" or the sender is not OSS. Remove the trailing "?" from the callbackUrl'
    })
  }

  if (signedPath.includes('+')) {
    const path = signedPath.replaceAll('+', '%20')
    out.push({
      name: 'plus-to-space',
      change: `path ${shown(path)}: each "+" as a space`,
      target: withPath(path),
      body,
      hint: `OSS signed a space where the path has "+" (${shown(path)}): something in front re-encodes spaces as "+". ` +
        `${SET_PUBLIC_PATH(path)}, or keep spaces and "+" out of the callbackUrl's path`
    })
  }
  if (/%20| /.test(signedPath)) {
    const path = signedPath.replace(/%20| /g, '+')
    out.push({
      name: 'space-to-plus',
      change: `path ${shown(path)}: each space as "+"`,
      target: withPath(path),
      body,
      hint: `OSS signed "+" where the path has a space (${shown(path)}): something in front decodes "+" to a space. ` +
        `${SET_PUBLIC_PATH(path)}, or keep spaces and "+" out of the callbackUrl's path`
    })
  }

  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const BODY_FIX = 'Give the verifier the raw body bytes as received, not a parsed and re-serialised body'
  if (bytes.includes('\r\n')) {
    out.push({
      name: 'crlf-to-lf',
      change: 'body with each CRLF turned into LF',
      target: signedTarget(signedPath, received),
      body: Buffer.from(bytes.toString('latin1').replaceAll('\r\n', '\n'), 'latin1'),
      hint: `OSS signed the body with LF line ends; it arrived with CRLF: something between OSS and the verifier rewrites the body. ${BODY_FIX}`
    })
  }
  if (bytes.at(-1) === 0x0a) {
    const cut = bytes.at(-2) === 0x0d ? 2 : 1
    out.push({
      name: 'trailing-newline-removed',
      change: 'body without its trailing newline',
      target: signedTarget(signedPath, received),
      body: bytes.subarray(0, bytes.length - cut),
      hint: `OSS signed the body without the trailing newline it arrived with: something between OSS and the verifier adds one. ${BODY_FIX}`
    })
  } else {
    out.push({
      name: 'trailing-newline-added',
      change: 'body with a trailing newline added',
      target: signedTarget(signedPath, received),
      body: Buffer.concat([bytes, Buffer.from('\n')]),
      hint: `OSS signed the body with a trailing newline that did not arrive: something between OSS and the verifier trims the body. ${BODY_FIX}`
    })
  }
  return out
}

function signedTarget (signedPath: string, received: SignedTarget): SignedTarget {
  return { path: signedPath, query: received.query }
}

/** The target the verifier signs: the public path when one is set, the query as received. */
export function verifiedTarget (url: string, publicPath: string | undefined): SignedTarget {
  const received = splitRequestTarget(url)
  return publicPath === undefined ? received : { path: publicPath, query: received.query }
}
