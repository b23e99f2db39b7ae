import { invalidOption, type OssCallbackError } from '../errors.js'
import { KeyProvider } from '../keys/provider.js'
import { decodeStrictBase64 } from '../protocol/base64.js'
import { checkKeyUrlHeader, compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS, type KeyUrlPolicy } from '../protocol/key-url.js'
import { MAX_SIGNATURE_B64_CHARS } from '../protocol/signature.js'
import { buildStringToSign } from '../protocol/string-to-sign.js'
import { selectSignatureVerifier, type SignatureVerifier } from '../receiver/signature-verifier.js'
import { createCaptureWriter, type CaptureWriter } from './capture.js'
import { hintWithoutVerify, noVariantHint } from './hints.js'
import { createRateLimiter, DEFAULT_DIAGNOSES_PER_SECOND, type RateLimiter } from './rate-limit.js'
import { variantsOf, type Variant } from './variants.js'

/** A refused request as the receiver saw it. */
export interface RefusedRequest {
  method: string
  /** The raw request target. */
  url: string
  /** Header names in lower case, as Node's `req.headers`. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>
  /** Node's `req.rawHeaders`; captures need them. */
  rawHeaders?: readonly string[] | undefined
  /** The raw body, when it was read. */
  body?: Uint8Array | undefined
  /** `1.1` or `1.0`. */
  httpVersion?: string | undefined
}

/** What {@link explainRefusal} works with. */
export interface ExplainContext {
  /** The receiver's key provider: a mismatch's key is pinned or cached there, so no fetch happens. */
  keys: KeyProvider
  policy: KeyUrlPolicy
  publicPath?: string | undefined
  bodyLimitBytes?: number | undefined
  check: SignatureVerifier
  /** Bounds the RSA verifies a flood of forgeries can cause. */
  limiter: RateLimiter
}

/** The first variant that verifies with `key`, or `undefined`. */
export function findVerifyingVariant (variants: readonly Variant[], verifies: (data: Buffer) => boolean): Variant | undefined {
  for (const v of variants) if (verifies(buildStringToSign(v.target, v.body))) return v
  return undefined
}

function safely<T> (f: () => T): T | undefined {
  try {
    return f()
  } catch {
    return undefined
  }
}

/**
 * The likely cause of a refusal and its fix, for the operator's log; `undefined`
 * when there is none to give (or the diagnosis is over its rate). After a
 * signature mismatch it tries each variant once, with the same key and without
 * any fetch: the key verified nothing, so it is pinned or still cached.
 */
export function explainRefusal (error: OssCallbackError, request: RefusedRequest, ctx: ExplainContext): string | undefined {
  if (error.code !== 'OSS_CB_ERR_SIGNATURE_MISMATCH') {
    return hintWithoutVerify(error, { method: request.method, headers: request.headers, policy: ctx.policy, bodyLimitBytes: ctx.bodyLimitBytes })
  }
  const authorization = request.headers.authorization
  const keyUrlHeader = request.headers['x-oss-pub-key-url']
  if (typeof authorization !== 'string' || typeof keyUrlHeader !== 'string') return undefined
  const signature = safely(() => decodeStrictBase64(authorization, MAX_SIGNATURE_B64_CHARS))
  const keyUrl = safely(() => checkKeyUrlHeader(keyUrlHeader, ctx.policy))
  if (signature === undefined || keyUrl === undefined) return undefined
  // The token before any copy of the body: a flood of forgeries must not cost more than the rate allows.
  if (!ctx.limiter.take()) return undefined
  const body = request.body ?? Buffer.alloc(0)
  const variants = safely(() => variantsOf({ url: request.url, headers: request.headers, body, publicPath: ctx.publicPath }))
  if (variants === undefined) return undefined
  const lookup = ctx.keys.peek(keyUrl)
  if (lookup === undefined) return undefined
  const found = safely(() => findVerifyingVariant(variants, (data) => ctx.check(lookup.key, data, signature)))
  return found !== undefined ? found.hint : noVariantHint(request.headers)
}

/** Options of {@link createDiagnostics}. */
export interface DiagnosticsOptions {
  /** The verifier's key provider (share it: the variants need the key the verify used). Default: a new one. */
  keys?: KeyProvider
  /** The verifier's key URL policy. Default: compiled from `keyOrigins`. */
  policy?: KeyUrlPolicy
  /** Allowed key origins, when no `policy` is given. Default: OSS's production origins. */
  keyOrigins?: readonly string[]
  /** The public path the verifier signs with, if any. */
  publicPath?: string
  /** The receiver's body limit, in bytes, for the hint. */
  bodyLimitBytes?: number
  /** Diagnoses per second and process, at most; captures have a bucket of the same size. Default 20. */
  diagnosesPerSecond?: number
  /** Clock in ms (tests). Default `Date.now`. */
  now?: () => number
  /** The signature check. Default: chosen by the start-up self-test, as the verifier's. */
  signatureVerifier?: SignatureVerifier
  /** Keep refused callbacks as raw HTTP files in this directory. Default: off. */
  captureDir?: string
  /** Captures kept, oldest first out. Default 20. */
  captureMax?: number
  /** Largest capture file, in bytes. Default 131072. */
  captureMaxBytes?: number
  /** Called when a capture cannot be written. Must not throw. */
  onCaptureError?: (err: unknown) => void
}

/** The receiver's diagnostics: the rate limiter, the key access and the capture writer in one. */
export interface Diagnostics {
  /** The hint for this refusal, or `undefined`; rate-limited where it costs RSA verifies. */
  explain: (error: OssCallbackError, request: RefusedRequest) => string | undefined
  /**
   * For the receiver's refusal path: explains, puts the hint on `error.hint`, and
   * captures a refusal (a 4xx) when captures are on. Returns the hint for the log line.
   */
  onRefusal: (error: OssCallbackError, request: RefusedRequest) => string | undefined
  /** The capture writer, when captures are on. */
  readonly captures: CaptureWriter | undefined
  /** Resolves when pending captures are written. */
  flush: () => Promise<void>
}

/** Creates the diagnostics; validates every option now. */
export function createDiagnostics (options: DiagnosticsOptions = {}): Diagnostics {
  if (options.publicPath !== undefined && !/^\/[^?#\s]*$/.test(options.publicPath)) {
    throw invalidOption(`publicPath must start with / and hold no query, got ${JSON.stringify(options.publicPath)}`)
  }
  const now = options.now ?? Date.now
  const perSecond = options.diagnosesPerSecond ?? DEFAULT_DIAGNOSES_PER_SECOND
  const ctx: ExplainContext = {
    keys: options.keys ?? new KeyProvider(),
    policy: options.policy ?? compileKeyUrlPolicy(options.keyOrigins ?? DEFAULT_KEY_ORIGINS),
    publicPath: options.publicPath,
    bodyLimitBytes: options.bodyLimitBytes,
    check: options.signatureVerifier ?? selectSignatureVerifier().verify,
    limiter: createRateLimiter(perSecond, now)
  }
  const captures = options.captureDir === undefined
    ? undefined
    : createCaptureWriter({
      dir: options.captureDir,
      max: options.captureMax,
      maxBytes: options.captureMaxBytes,
      perSecond,
      now,
      onError: options.onCaptureError
    })
  const explain = (error: OssCallbackError, request: RefusedRequest): string | undefined => explainRefusal(error, request, ctx)
  return {
    explain,
    onRefusal (error, request) {
      const hint = explain(error, request)
      if (hint !== undefined) error.hint = hint
      if (captures !== undefined && error.statusCode >= 400 && error.statusCode < 500 && request.rawHeaders !== undefined) {
        void captures.write({ method: request.method, url: request.url, httpVersion: request.httpVersion, rawHeaders: request.rawHeaders, body: request.body })
      }
      return hint
    },
    captures,
    flush: async () => { await captures?.flush() }
  }
}
