import { isOssCallbackError, ossError, type OssCallbackError } from '../errors.js'
import type { KeyLookup, KeyProvider } from '../keys/provider.js'
import { decodeStrictBase64 } from '../protocol/base64.js'
import { bodyTypeOf } from '../protocol/body.js'
import { checkKeyUrlHeader, MAX_KEY_URL_B64_CHARS, type KeyUrlPolicy } from '../protocol/key-url.js'
import { MAX_SIGNATURE_B64_CHARS, modulusBytes } from '../protocol/signature.js'
import { buildStringToSign, splitRequestTarget, type SignedTarget } from '../protocol/string-to-sign.js'
import type { SignatureVerifier } from '../receiver/signature-verifier.js'
import { hintWithoutVerify, noVariantHint } from './hints.js'
import type { ParsedRequest } from './request-file.js'
import { escapeBytes, shown } from './text.js'
import { FORWARDED_PREFIX_HEADER, ORIGINAL_URI_HEADERS, variantsOf, verifiedTarget } from './variants.js'

/** The receiver settings a diagnosis applies, as `serve` takes them. */
export interface DiagnoseSettings {
  /** The route OSS posts to (`OSS_CALLBACK_PATH`), if known. */
  path?: string | undefined
  /** `OSS_CALLBACK_PUBLIC_PATH`. */
  publicPath?: string | undefined
  policy: KeyUrlPolicy
  keys: KeyProvider
  check: SignatureVerifier
  /** Time for a key fetch, in ms. */
  keyTimeoutMs?: number
}

/** How a diagnosis ended: the diagnose command's exit code. */
export const DIAGNOSE_EXIT = { verified: 0, variant: 2, refused: 3 } as const

/** The result of {@link diagnoseRequest}. */
export interface Diagnosis {
  /** The report, one line each, meant to be read top to bottom. */
  lines: string[]
  outcome: keyof typeof DIAGNOSE_EXIT
  /** The cause and fix, when there is one. */
  hint?: string
  /** The variant that verified. */
  variant?: string
}

const SIGNED_HEADERS = ['authorization', 'x-oss-pub-key-url', 'content-type']

function describeKey (lookup: KeyLookup, url: string): string {
  const bits = modulusBytes(lookup.key) * 8
  switch (lookup.source) {
    case 'pinned': return `pinned for ${url} (RSA ${bits} bits): no fetch`
    case 'cache': return `cached from ${url} (RSA ${bits} bits)`
    case 'fetch': return `fetched from ${url} (RSA ${bits} bits)`
  }
}

function indentEscaped (bytes: Buffer): string[] {
  // One report line per line of the string to sign, each ending in its visible \n.
  const lines: string[] = []
  let start = 0
  for (let lf = bytes.indexOf(0x0a); lf !== -1; lf = bytes.indexOf(0x0a, start)) {
    lines.push(`  ${escapeBytes(bytes.subarray(start, lf + 1))}`)
    start = lf + 1
  }
  if (start < bytes.length || lines.length === 0) lines.push(`  ${escapeBytes(bytes.subarray(start))}`)
  return lines
}

/**
 * Diagnoses one captured request step by step, as the receiver would verify it,
 * then tries every variant. Reuses the receiver's own pieces: the key URL check,
 * the key provider and the one string-to-sign function.
 */
export async function diagnoseRequest (request: ParsedRequest, settings: DiagnoseSettings): Promise<Diagnosis> {
  const lines: string[] = []
  const out = (line: string): void => { lines.push(line) }
  const refused = (error: OssCallbackError): Diagnosis => {
    const hint = hintWithoutVerify(error, { method: request.method, headers: request.headers, policy: settings.policy })
    out(`refused: ${error.code} (${error.reason ?? error.message}), before the signature check`)
    if (hint !== undefined) out(`hint: ${hint}`)
    return hint === undefined ? { lines, outcome: 'refused' } : { lines, outcome: 'refused', hint }
  }

  out('request target')
  out(`  ${request.method} ${shown(request.url, 2048)} HTTP/${request.httpVersion}`)
  for (const note of request.notes) out(`  note: ${note}`)
  let received: SignedTarget
  try {
    received = splitRequestTarget(request.url)
  } catch (err) {
    return refused(err as OssCallbackError)
  }
  out(`  path ${shown(received.path, 2048)}, query ${received.query === '' ? '(none)' : shown(received.query, 2048)}`)
  if (settings.path !== undefined) {
    out(received.path === settings.path
      ? `  the route (path) is ${settings.path}: it matches`
      : `  the route (path) is ${settings.path}: this request's path differs, so the receiver would answer 404 OSS_CB_ERR_NOT_FOUND`)
  }
  if (settings.publicPath !== undefined) out(`  public path ${settings.publicPath}: the signature is checked over it instead of the path`)
  if (request.method !== 'POST') return refused(ossError('METHOD_NOT_ALLOWED', 'callback path takes POST only'))

  out(`headers (${request.rawHeaders.length / 2})`)
  const counts = new Map<string, number>()
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i] as string
    const value = request.rawHeaders[i + 1] as string
    const lower = name.toLowerCase()
    counts.set(lower, (counts.get(lower) ?? 0) + 1)
    const text = lower === 'authorization' && value.length > 40 ? `${shown(value, 24)} (${value.length} characters)` : shown(value, 300)
    out(`  ${name}: ${text}`)
  }
  const repeated = [...counts].filter(([, n]) => n > 1)
  out(`  duplicates: ${repeated.length === 0 ? 'none' : repeated.map(([n, c]) => `${n} (${c} times)`).join(', ')}`)
  const proxy = [FORWARDED_PREFIX_HEADER, ...ORIGINAL_URI_HEADERS].filter((n) => counts.has(n))
  out(`  proxy headers: ${proxy.length === 0 ? 'none' : proxy.join(', ')}`)
  for (const name of SIGNED_HEADERS) {
    if ((counts.get(name) ?? 0) > 1) return refused(ossError('DUPLICATE_HEADER', `${name} header repeated`))
  }
  const headers = request.headers
  const contentType = typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined
  const type = bodyTypeOf(contentType)
  out(`body: ${request.body.length} bytes, ${type === undefined ? 'neither form nor JSON' : type}`)
  if (type === undefined) return refused(ossError('UNSUPPORTED_MEDIA_TYPE', 'content type is not form or JSON'))
  const authorization = headers.authorization
  const keyUrlHeader = headers['x-oss-pub-key-url']
  if (typeof authorization !== 'string' || authorization === '') return refused(ossError('MISSING_HEADER', 'authorization header missing'))
  if (typeof keyUrlHeader !== 'string' || keyUrlHeader === '') return refused(ossError('MISSING_HEADER', 'x-oss-pub-key-url header missing'))
  let signature: Buffer
  try {
    signature = decodeStrictBase64(authorization, MAX_SIGNATURE_B64_CHARS)
  } catch (err) {
    return refused(err as OssCallbackError)
  }
  out(`signature: ${signature.length} bytes (${signature.length * 8}-bit key) from Authorization`)

  out('key URL')
  let decoded: string | undefined
  try {
    decoded = decodeStrictBase64(keyUrlHeader, MAX_KEY_URL_B64_CHARS).toString('latin1')
    out(`  decoded: ${shown(decoded, 2048)}`)
  } catch {
    out('  decoded: (not strict base64)')
  }
  let keyUrl: string
  try {
    keyUrl = checkKeyUrlHeader(keyUrlHeader, settings.policy)
  } catch (err) {
    if (!isOssCallbackError(err)) throw err
    out(`  rule: refused, ${err.reason ?? err.message}; allowed origins: ${[...settings.policy.origins].join(', ')}`)
    return refused(err)
  }
  out(`  rule: allowed, origin ${new URL(keyUrl).origin} is among the allowed key origins (OSS_CALLBACK_KEY_ORIGINS) and the path is one /<name>.pem segment`)

  let lookup: KeyLookup
  try {
    lookup = await settings.keys.get(keyUrl, { timeoutMs: settings.keyTimeoutMs })
  } catch (err) {
    if (!isOssCallbackError(err)) throw err
    out(`key: ${err.code} (${err.reason ?? err.message}) for ${keyUrl}`)
    out('refused: no key, so no signature check')
    return { lines, outcome: 'refused' }
  }
  out(`key: ${describeKey(lookup, keyUrl)}`)

  const target = verifiedTarget(request.url, settings.publicPath)
  const data = buildStringToSign(target, request.body)
  out(`string to sign (${data.length} bytes: the ${settings.publicPath === undefined ? 'path as received' : 'public path'} percent-decoded, ` +
    `${target.query === '' ? 'no query' : '"?" and the raw query'}, LF, the raw body), escaped:`)
  for (const l of indentEscaped(data)) out(l)
  const verifies = (bytes: Buffer): boolean => {
    try {
      return settings.check(lookup.key, bytes, signature)
    } catch {
      return false
    }
  }
  const asReceived = verifies(data)
  out(`verify: ${asReceived ? 'VERIFIES as received' : 'does not verify (OSS_CB_ERR_SIGNATURE_MISMATCH)'}`)

  const variants = variantsOf({ url: request.url, headers, body: request.body, publicPath: settings.publicPath })
  out(`variants (${variants.length}, each changing one thing)`)
  let found: (typeof variants)[number] | undefined
  for (const v of variants) {
    const ok = verifies(buildStringToSign(v.target, v.body))
    if (ok && found === undefined) found = v
    out(`  ${ok ? 'VERIFIES' : 'no      '}  ${v.name}: ${v.change}`)
  }
  if (asReceived) {
    out('result: the callback verifies as received')
    return { lines, outcome: 'verified' }
  }
  if (found !== undefined) {
    out(`hint: ${found.hint}`)
    out(`result: only the variant ${found.name} verifies`)
    return { lines, outcome: 'variant', hint: found.hint, variant: found.name }
  }
  const hint = noVariantHint(headers)
  out(`hint: ${hint}`)
  out('result: nothing verifies')
  return { lines, outcome: 'refused', hint }
}
