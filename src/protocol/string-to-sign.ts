import { ossError } from '../errors.js'

/** A request target split the way OSS signs it. */
export interface SignedTarget {
  /** The path exactly as it appears on the wire (still percent-encoded). */
  path: string
  /** The raw query after `?`, not decoded; `''` when there is none. */
  query: string
}

/**
 * Splits a raw request target (`/index.php?id=1`) into path and raw query.
 * Only origin-form targets are accepted: OSS always sends one.
 */
export function splitRequestTarget (target: string): SignedTarget {
  if (target.length === 0 || target.charCodeAt(0) !== 0x2f /* / */) {
    throw ossError('BAD_REQUEST_TARGET', 'request target is not origin-form')
  }
  const q = target.indexOf('?')
  if (q === -1) return { path: target, query: '' }
  return { path: target.slice(0, q), query: target.slice(q + 1) }
}

function hexValue (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

/**
 * Percent-decodes a path to bytes, once. `+` stays `+` (it is a space only in
 * form bodies), and a `%` not followed by two hex digits is kept as it is:
 * OSS's exact treatment of those is an open point, so we neither guess nor throw.
 */
export function percentDecodePath (path: string): Buffer {
  const raw = Buffer.from(path, 'utf8')
  if (!raw.includes(0x25 /* % */)) return raw
  const out = Buffer.allocUnsafe(raw.length)
  let n = 0
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as number
    if (c === 0x25 && i + 2 < raw.length) {
      const hi = hexValue(raw[i + 1] as number)
      const lo = hexValue(raw[i + 2] as number)
      if (hi !== -1 && lo !== -1) {
        out[n++] = hi * 16 + lo
        i += 2
        continue
      }
    }
    out[n++] = c
  }
  return out.subarray(0, n)
}

const LF = Buffer.from('\n')
const QMARK = Buffer.from('?')

/**
 * The bytes OSS signs: `url_decode(path) + ("?" + rawQuery if a query exists) + "\n" + rawBody`.
 *
 * Wrong variants seen in public code, each of which fails real callbacks:
 * always adding `?`, dropping the query, decoding the path twice, re-serialising the body.
 * An empty query (`/p?`) counts as no query.
 */
export function buildStringToSign (target: SignedTarget, body: Uint8Array): Buffer {
  const path = percentDecodePath(target.path)
  if (target.query.length === 0) return Buffer.concat([path, LF, body])
  return Buffer.concat([path, QMARK, Buffer.from(target.query, 'utf8'), LF, body])
}
