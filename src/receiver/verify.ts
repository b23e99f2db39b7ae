import { isOssCallbackError, invalidOption, ossError } from '../errors.js'
import { KeyProvider, type KeyProviderOptions, type KeySource } from '../keys/provider.js'
import { decodeStrictBase64 } from '../protocol/base64.js'
import { bodyTypeOf, parseCallbackBody, type ParsedCallbackBody } from '../protocol/body.js'
import { checkKeyUrlHeader, compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS, type KeyUrlPolicy } from '../protocol/key-url.js'
import { BUCKET_NAME } from '../protocol/post-policy.js'
import { MAX_SIGNATURE_B64_CHARS } from '../protocol/signature.js'
import { buildStringToSign, splitRequestTarget, type SignedTarget } from '../protocol/string-to-sign.js'
import { selectSignatureVerifier, type SignatureVerifier, type VerifierName } from './signature-verifier.js'
import { atTurnEnd } from '../turn.js'

/** What the verifier needs of an HTTP request; any framework can supply it. */
export interface CallbackRequest {
  /** The raw request target as received, path and query: `req.url` in Node. */
  url: string
  /** Header names in lower case, as Node's `req.headers`. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>
  /**
   * Node's `req.rawHeaders`, when available. Node silently keeps only the first
   * of several `authorization` headers; with raw headers a duplicate is refused.
   */
  rawHeaders?: readonly string[]
  /** The raw body bytes, exactly as received. Never a re-serialised object. */
  body: Uint8Array
}

/** A callback whose signature verified, with its body parsed. */
export interface VerifiedCallback extends ParsedCallbackBody {
  /** The raw body bytes that were verified. */
  raw: Buffer
  /** The path that was signed (the public path when one is configured), still percent-encoded. */
  path: string
  /** The raw query that was signed, without `?`; `''` when there is none. */
  query: string
  /** The public key URL that verified the signature. */
  keyUrl: string
  /** Where the key came from. */
  keySource: KeySource
  /** `x-oss-request-id`, for logs. Informational: OSS does not sign it. */
  requestId: string | undefined
}

/** Options of {@link createCallbackVerifier}. */
export interface CallbackVerifierOptions {
  /**
   * Origins the public key may come from, such as `https://gosspublic.alicdn.com`.
   * Default: `https://gosspublic.alicdn.com` and `http://gosspublic.alicdn.com`.
   */
  keyOrigins?: readonly string[]
  /**
   * The path OSS called, when a proxy in front rewrites it (for example strips a
   * prefix). The signature covers this path, not the one the app sees. Default: the received path.
   */
  publicPath?: string
  /**
   * The buckets whose callbacks are accepted. OSS signs callbacks for every customer, so anyone can
   * upload to their own bucket with a `callbackUrl` naming this receiver, and the signature verifies.
   * With a list, a verified callback whose body names another bucket, or no bucket (the body template
   * must then carry `bucket=${bucket}`), gets 403 `OSS_CB_ERR_BUCKET_NOT_ALLOWED`. Default: any bucket.
   */
  buckets?: readonly string[]
  /** A key provider to share, or options for a new one. */
  keys?: KeyProvider | KeyProviderOptions
  /**
   * The signature check. Default: chosen by a start-up self-test (node:crypto,
   * or node-forge where OpenSSL refuses MD5 or 512-bit RSA).
   */
  signatureVerifier?: SignatureVerifier
  /**
   * The node:crypto check the self-test tries first. Tests replace it with one
   * that throws, as OpenSSL does under FIPS, to exercise the node-forge fallback.
   */
  nativeSignatureVerifier?: SignatureVerifier
  /**
   * Run the verifications that arrive in one event-loop turn together, in one pass
   * after the turn's reads (at the turn's end, see turn.ts), instead of one by one between them.
   * Adds no wait beyond the current turn; under load it raises verified callbacks per
   * second markedly (bench/RESULTS.md). Default: true.
   */
  batchVerifications?: boolean
}

/** Per-call options of {@link CallbackVerifier.verify}. */
export interface VerifyOptions {
  /** Time left for this callback, in ms: bounds the key fetch. Default: the provider's fetch timeout. */
  timeoutMs?: number
}

const MAX_ACCEPTED_KEY_URLS = 64

/** Verifies OSS callbacks: a plain object usable from Express, Koa, a Lambda or the Fastify plugin. */
export interface CallbackVerifier {
  /** Verifies the signature over the raw bytes, then parses them. Throws a coded error. */
  verify (request: CallbackRequest, options?: VerifyOptions): Promise<VerifiedCallback>
  /** The key provider (pinned keys, cache, fetches). */
  readonly keys: KeyProvider
  /** The key URL allowlist. */
  readonly policy: KeyUrlPolicy
  /** The allowed buckets; `undefined` when any bucket is accepted. */
  readonly buckets: readonly string[] | undefined
  /** Which signature implementation passed the self-test (`'custom'` when one was injected). */
  readonly verifierName: VerifierName | 'custom'
  /** The public path signatures are checked over, if one is set. */
  readonly publicPath: string | undefined
}

function singleHeader (request: CallbackRequest, name: string): string {
  const value = request.headers[name]
  if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) {
    throw ossError('MISSING_HEADER', `${name} header missing`)
  }
  if (typeof value !== 'string') throw ossError('DUPLICATE_HEADER', `${name} header repeated`)
  const raw = request.rawHeaders
  if (raw !== undefined) {
    let seen = 0
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i] as string
      if (n.length === name.length && n.toLowerCase() === name && ++seen > 1) {
        throw ossError('DUPLICATE_HEADER', `${name} header repeated`)
      }
    }
  }
  return value
}

/** Creates a verifier; validates every option now, so bad values fail at start-up. */
export function createCallbackVerifier (options: CallbackVerifierOptions = {}): CallbackVerifier {
  const policy = compileKeyUrlPolicy(options.keyOrigins ?? DEFAULT_KEY_ORIGINS)
  const keys = options.keys instanceof KeyProvider ? options.keys : new KeyProvider(options.keys)
  if (options.publicPath !== undefined && !/^\/[^?#\s]*$/.test(options.publicPath)) {
    throw invalidOption(`publicPath must start with / and hold no query, got ${JSON.stringify(options.publicPath)}`)
  }
  const publicPath = options.publicPath
  const buckets = checkBuckets(options.buckets)
  const allowedBuckets = buckets === undefined ? undefined : new Set(buckets)
  const batch = options.batchVerifications ?? true
  if (typeof batch !== 'boolean') throw invalidOption(`batchVerifications must be true or false, got ${JSON.stringify(batch)}`)
  // `x-oss-pub-key-url` header text -> checked key URL. The check is pure and real traffic names one
  // or two keys, so an accepted value is not decoded and parsed again; refusals are never stored.
  const acceptedKeyUrls = new Map<string, string>()
  let check: SignatureVerifier
  let verifierName: VerifierName | 'custom'
  if (options.signatureVerifier !== undefined) {
    check = options.signatureVerifier
    verifierName = 'custom'
  } else {
    const selected = selectSignatureVerifier(options.nativeSignatureVerifier)
    check = selected.verify
    verifierName = selected.name
  }

  async function verifyNow (request: CallbackRequest, verifyOptions: VerifyOptions = {}): Promise<VerifiedCallback> {
    const type = bodyTypeOf(headerText(request.headers['content-type']))
    if (type === undefined) throw ossError('UNSUPPORTED_MEDIA_TYPE', 'content type is not form or JSON')
    const signature = decodeStrictBase64(singleHeader(request, 'authorization'), MAX_SIGNATURE_B64_CHARS)
    const keyUrlHeader = singleHeader(request, 'x-oss-pub-key-url')
    let keyUrl = acceptedKeyUrls.get(keyUrlHeader)
    if (keyUrl === undefined) {
      keyUrl = checkKeyUrlHeader(keyUrlHeader, policy)
      if (acceptedKeyUrls.size >= MAX_ACCEPTED_KEY_URLS) acceptedKeyUrls.clear()
      acceptedKeyUrls.set(keyUrlHeader, keyUrl)
    }

    const received = splitRequestTarget(request.url)
    const target: SignedTarget = publicPath === undefined ? received : { path: publicPath, query: received.query }
    const body = request.body
    const data = buildStringToSign(target, body)

    const getOptions = { timeoutMs: verifyOptions.timeoutMs }
    // A pinned or cached key needs no await: one microtask less per callback.
    let lookup = keys.getCached(keyUrl) ?? await keys.get(keyUrl, getOptions)
    if (!check(lookup.key, data, signature)) {
      // A fetched key may have been rotated at its URL: allow one refetch, rate-limited by the provider.
      const refreshed = lookup.source === 'pinned' ? undefined : await keys.refresh(keyUrl, getOptions).catch(() => undefined)
      if (refreshed === undefined || !check(refreshed.key, data, signature)) {
        throw ossError('SIGNATURE_MISMATCH', 'signature does not verify')
      }
      lookup = refreshed
    }

    const raw = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
    const parsed = parseCallbackBody(raw, type)
    if (allowedBuckets !== undefined) {
      const bucket = parsed.system.bucket
      if (bucket === undefined || !allowedBuckets.has(bucket)) {
        throw ossError('BUCKET_NOT_ALLOWED', bucket === undefined ? 'the callback body names no bucket' : 'the callback body names a bucket not on the list')
      }
    }
    // Named fields, not `...parsed`: the spread cost more than the RSA verify itself (about 12 µs).
    return {
      type: parsed.type,
      fields: parsed.fields,
      system: parsed.system,
      vars: parsed.vars,
      raw,
      path: target.path,
      query: target.query,
      keyUrl,
      keySource: lookup.source,
      requestId: headerText(request.headers['x-oss-request-id'])
    }
  }

  // Batches, because a verify run between a socket read and its reply finds OpenSSL's code and
  // tables cold: on the 2-core VMs we benchmark on (PTI without PCID, so every syscall flushes the
  // TLB) it cost about four times its cost in a loop. Every callback of a turn awaits the same
  // promise, so their verifications run back to back, warm, and the replies leave together.
  let turnEnd: Promise<void> | undefined
  const endTurn = (resolve: () => void): void => { atTurnEnd(() => { turnEnd = undefined; resolve() }) }
  async function verifyInBatch (request: CallbackRequest, verifyOptions?: VerifyOptions): Promise<VerifiedCallback> {
    await (turnEnd ??= new Promise(endTurn))
    return await verifyNow(request, verifyOptions)
  }

  return { verify: batch ? verifyInBatch : verifyNow, keys, policy, buckets, verifierName, publicPath }
}

function checkBuckets (buckets: readonly string[] | undefined): readonly string[] | undefined {
  if (buckets === undefined) return undefined
  if (!Array.isArray(buckets) || buckets.length === 0) throw invalidOption('buckets must name at least one bucket (leave it out to accept any)')
  for (const b of buckets) {
    if (typeof b !== 'string' || !BUCKET_NAME.test(b)) {
      throw invalidOption(`buckets: ${JSON.stringify(String(b).slice(0, 70))} is not a bucket name (3 to 63 characters of a-z, 0-9 and -)`)
    }
  }
  return Object.freeze([...buckets])
}

function headerText (value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0]
}

let defaultVerifier: CallbackVerifier | undefined

/**
 * Verifies a callback with the default settings: OSS's production key origins,
 * the pinned production key, and the self-tested signature implementation.
 * For other settings, create a verifier once with {@link createCallbackVerifier}.
 */
export function verifyCallback (request: CallbackRequest, options?: VerifyOptions): Promise<VerifiedCallback> {
  defaultVerifier ??= createCallbackVerifier()
  return defaultVerifier.verify(request, options)
}

export { isOssCallbackError }
