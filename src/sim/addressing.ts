import { percentDecodePath } from '../protocol/string-to-sign.js'
import { OSS_ERRORS } from './oss-error.js'

/** Where a request goes, after virtual-hosted or path-style addressing. */
export interface Target {
  /** The percent-decoded path. */
  path: string
  query: Array<[string, string]>
  /** True when the bucket came from the path (the Host was the simulator's own address). */
  pathStyle: boolean
  bucket?: string
  key?: string
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function decodeComponent (s: string): string {
  // No `+` to space: base64 callback values travel in the query and keep their `+`.
  try {
    return decodeURIComponent(s)
  } catch {
    throw OSS_ERRORS.invalidArgument('The request URI is not validly percent-encoded.')
  }
}

/** Decoded query parameters in order; `+` stays `+`. Throws InvalidArgument for bad percent-encoding. */
export function parseQuery (raw: string): Array<[string, string]> {
  if (raw === '') return []
  return raw.split('&').filter((p) => p !== '').map((p) => {
    const eq = p.indexOf('=')
    return eq === -1 ? [decodeComponent(p), ''] : [decodeComponent(p.slice(0, eq)), decodeComponent(p.slice(eq + 1))]
  })
}

/** True when a `Host` name is the simulator's own address rather than `<bucket>.<endpoint>`. */
export function isOwnHost (hostname: string, own: ReadonlySet<string>): boolean {
  // An IP, a single label (a container name) or localhost is an address, never `<bucket>.<endpoint>`.
  return own.has(hostname) || !hostname.includes('.') || /^[\d.]+$/.test(hostname) || hostname.startsWith('[')
}

/**
 * Splits a request into bucket, key and query as OSS does: virtual-hosted when the
 * `Host` is a name that is not the simulator's own (the bucket is its first label,
 * the key the whole decoded path), else path style `/<bucket>/<key>`. The path is
 * percent-decoded once, before splitting.
 */
export function parseTarget (rawUrl: string, hostHeader: string | undefined, own: ReadonlySet<string>): Target {
  const q = rawUrl.indexOf('?')
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q)
  const query = parseQuery(q === -1 ? '' : rawUrl.slice(q + 1))
  let path: string
  try {
    // Decode before splitting: the C SDK sends `/bucket%2Fdir%2Fkey` with an IP endpoint.
    path = utf8.decode(percentDecodePath(rawPath))
  } catch {
    throw OSS_ERRORS.invalidObjectName()
  }
  const hostname = (hostHeader ?? '').toLowerCase().replace(/:\d+$/, '')
  if (hostname !== '' && !isOwnHost(hostname, own)) {
    const bucket = hostname.slice(0, hostname.indexOf('.'))
    const key = path.slice(1)
    return { path, query, pathStyle: false, bucket, ...(key === '' ? {} : { key }) }
  }
  const rest = path.slice(1)
  if (rest === '') return { path, query, pathStyle: true }
  const slash = rest.indexOf('/')
  const bucket = slash === -1 ? rest : rest.slice(0, slash)
  const key = slash === -1 ? '' : rest.slice(slash + 1)
  return { path, query, pathStyle: true, bucket, ...(key === '' ? {} : { key }) }
}

