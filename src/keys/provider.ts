import type { KeyObject } from 'node:crypto'
import { invalidOption, isOssCallbackError, ossError, type OssCallbackError } from '../errors.js'
import { PRODUCTION_KEY_HOST } from '../protocol/key-url.js'
import { parsePublicKeyPem } from '../protocol/signature.js'
import { defaultPinnedKeys } from './pinned.js'

/** The `fetch` the provider calls; `globalThis.fetch` by default. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>

/** Options of {@link KeyProvider}. Every duration is in milliseconds. */
export interface KeyProviderOptions {
  /** Fetch implementation (inject one in tests). Default: `globalThis.fetch`. */
  fetch?: FetchLike
  /** Clock in ms since the epoch (inject one in tests). Default: `Date.now`. */
  now?: () => number
  /** Timeout of one key fetch, body included, in ms. Default: 2000. */
  fetchTimeoutMs?: number
  /** Largest key response accepted, in bytes. Default: 16384. */
  maxKeyBytes?: number
  /** How long a fetched key stays cached, in ms. Default: 3600000 (1 hour). */
  cacheTtlMs?: number
  /** Most fetched keys kept; the least recently used goes first. Default: 100. */
  cacheMaxEntries?: number
  /** After a failed fetch, how long callbacks naming that URL fail fast, in ms. Default: 5000. */
  failureBackoffMs?: number
  /** A verification failure may refetch a cached key (rotation) once it is at least this old, in ms. Default: 60000. */
  refreshMinIntervalMs?: number
  /** Key URL (exact text) to parsed key, never fetched. Default: OSS's production key for both URL forms. */
  pinned?: ReadonlyMap<string, KeyObject>
  /** Hosts whose keys are fetched over https even when the URL says http. Default: `gosspublic.alicdn.com`. */
  httpsOnlyHosts?: readonly string[]
}

/** Where a key came from. */
export type KeySource = 'pinned' | 'cache' | 'fetch'

/** A key, and where it came from. */
export interface KeyLookup {
  key: KeyObject
  source: KeySource
}

/** Per-call limits: the caller's own remaining time, from its callback deadline. */
export interface KeyGetOptions {
  /** At most this many ms for this caller, even when a shared fetch runs longer. */
  timeoutMs?: number
}

/** Counters, for metrics. */
export interface KeyProviderStats {
  pinnedHits: number
  cacheHits: number
  cacheMisses: number
  fetches: number
  fetchFailures: number
  backoffRejections: number
}

interface CacheEntry {
  key: KeyObject
  fetchedAt: number
  /** Last rotation refetch begun for this key, successful or not: the refresh rate limit counts from it. */
  refreshTriedAt: number
}
interface Failure { until: number }

function positiveInt (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw invalidOption(`${name} must be a positive whole number, got ${String(value)}`)
  }
  return value
}

function nonNegativeInt (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalidOption(`${name} must be a whole number >= 0, got ${String(value)}`)
  }
  return value
}

/**
 * Supplies public keys by URL: pinned keys first, then a bounded TTL cache,
 * then one fetch per URL however many callbacks ask at once (single flight).
 * The URL must already have passed the key URL policy.
 */
export class KeyProvider {
  readonly stats: KeyProviderStats = { pinnedHits: 0, cacheHits: 0, cacheMisses: 0, fetches: 0, fetchFailures: 0, backoffRejections: 0 }
  readonly fetchTimeoutMs: number
  private readonly fetchImpl: FetchLike
  private readonly now: () => number
  private readonly maxKeyBytes: number
  private readonly cacheTtlMs: number
  private readonly cacheMaxEntries: number
  private readonly failureBackoffMs: number
  private readonly refreshMinIntervalMs: number
  private readonly pinned: ReadonlyMap<string, KeyObject>
  private readonly httpsOnlyHosts: ReadonlySet<string>
  private readonly cache = new Map<string, CacheEntry>()
  private readonly inflight = new Map<string, Promise<CacheEntry>>()
  private readonly failures = new Map<string, Failure>()

  constructor (options: KeyProviderOptions = {}) {
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
    this.now = options.now ?? Date.now
    this.fetchTimeoutMs = positiveInt('keyFetchTimeoutMs', options.fetchTimeoutMs, 2000)
    this.maxKeyBytes = positiveInt('maxKeyBytes', options.maxKeyBytes, 16 * 1024)
    this.cacheTtlMs = positiveInt('keyCacheTtlMs', options.cacheTtlMs, 60 * 60 * 1000)
    this.cacheMaxEntries = positiveInt('keyCacheMaxEntries', options.cacheMaxEntries, 100)
    this.failureBackoffMs = nonNegativeInt('keyFetchFailureBackoffMs', options.failureBackoffMs, 5000)
    this.refreshMinIntervalMs = nonNegativeInt('keyRefreshMinIntervalMs', options.refreshMinIntervalMs, 60_000)
    this.pinned = options.pinned ?? defaultPinnedKeys()
    this.httpsOnlyHosts = new Set(options.httpsOnlyHosts ?? [PRODUCTION_KEY_HOST])
  }

  /** The URLs of the pinned keys (never fetched). */
  get pinnedUrls (): string[] {
    return [...this.pinned.keys()]
  }

  /** True when `url` names a pinned key. */
  isPinned (url: string): boolean {
    return this.pinned.has(url)
  }

  /**
   * The key for `url` when it is pinned or freshly cached, without counting a lookup or touching
   * the cache's order: for a refusal's diagnosis, which must not show in the key metrics.
   */
  peek (url: string): KeyLookup | undefined {
    const pinned = this.pinned.get(url)
    if (pinned !== undefined) return { key: pinned, source: 'pinned' }
    const entry = this.cache.get(url)
    if (entry !== undefined && this.now() - entry.fetchedAt < this.cacheTtlMs) return { key: entry.key, source: 'cache' }
    return undefined
  }

  /**
   * The key for `url` when it is pinned or freshly cached, without waiting (counted as a hit);
   * `undefined` when only {@link KeyProvider.get} can supply it.
   */
  getCached (url: string): KeyLookup | undefined {
    const pinned = this.pinned.get(url)
    if (pinned !== undefined) {
      this.stats.pinnedHits++
      return { key: pinned, source: 'pinned' }
    }
    const entry = this.cache.get(url)
    if (entry !== undefined) {
      if (this.now() - entry.fetchedAt < this.cacheTtlMs) {
        this.stats.cacheHits++
        // Re-insert to keep Map order as least-recently-used first.
        this.cache.delete(url)
        this.cache.set(url, entry)
        return { key: entry.key, source: 'cache' }
      }
      this.cache.delete(url)
    }
    return undefined
  }

  /** The key for `url` (pinned, cached or fetched once). Throws a coded key error. */
  async get (url: string, options: KeyGetOptions = {}): Promise<KeyLookup> {
    const hit = this.getCached(url)
    if (hit !== undefined) return hit
    this.stats.cacheMisses++
    const fetched = await this.load(url, options.timeoutMs)
    return { key: fetched.key, source: 'fetch' }
  }

  /**
   * After a signature failed with a fetched key, fetch it once more in case the
   * key at that URL was rotated. Returns the new key, or `undefined` when the key
   * is pinned or a refetch was tried too recently to be worth asking again (so that
   * forged callbacks cannot turn into a stream of fetches).
   *
   * The cached key stays in use until a new one is fetched and parsed, and a failed
   * refetch does not put its URL into back-off: anyone can send a bad signature, so a
   * forged callback must not take a good key away from genuine ones while the key host is down.
   */
  async refresh (url: string, options: KeyGetOptions = {}): Promise<KeyLookup | undefined> {
    if (this.pinned.has(url)) return undefined
    const entry = this.usableEntry(url)
    if (entry !== undefined) {
      if (this.now() - entry.refreshTriedAt < this.refreshMinIntervalMs) return undefined
      entry.refreshTriedAt = this.now()
    }
    const fetched = await this.load(url, options.timeoutMs)
    return { key: fetched.key, source: 'fetch' }
  }

  private usableEntry (url: string): CacheEntry | undefined {
    const entry = this.cache.get(url)
    return entry !== undefined && this.now() - entry.fetchedAt < this.cacheTtlMs ? entry : undefined
  }

  /** Forgets every cached key and failure (pinned keys stay). */
  clear (): void {
    this.cache.clear()
    this.failures.clear()
  }

  private load (url: string, callerTimeoutMs: number | undefined): Promise<CacheEntry> {
    let shared = this.inflight.get(url)
    if (shared === undefined) {
      const failure = this.failures.get(url)
      if (failure !== undefined) {
        if (this.now() < failure.until) {
          this.stats.backoffRejections++
          return Promise.reject(ossError('KEY_FETCH_BACKOFF', 'a recent fetch of this key failed'))
        }
        this.failures.delete(url)
      }
      shared = this.fetchKey(url).finally(() => this.inflight.delete(url))
      this.inflight.set(url, shared)
    }
    if (callerTimeoutMs === undefined || callerTimeoutMs >= this.fetchTimeoutMs) return shared
    return withCallerTimeout(shared, callerTimeoutMs)
  }

  private async fetchKey (url: string): Promise<CacheEntry> {
    this.stats.fetches++
    try {
      const pem = await this.download(url)
      const key = parsePublicKeyPem(pem)
      const fetchedAt = this.now()
      const entry: CacheEntry = { key, fetchedAt, refreshTriedAt: fetchedAt }
      // Delete first so that the new entry goes to the most recently used end.
      this.cache.delete(url)
      this.cache.set(url, entry)
      while (this.cache.size > this.cacheMaxEntries) {
        const oldest = this.cache.keys().next().value as string
        this.cache.delete(oldest)
      }
      return entry
    } catch (err) {
      this.stats.fetchFailures++
      // A URL whose cached key still serves is not failing for genuine callbacks: no back-off.
      if (this.failureBackoffMs > 0 && this.usableEntry(url) === undefined) {
        this.failures.set(url, { until: this.now() + this.failureBackoffMs })
        // Bounded like the cache: callers choose the key names, so unique ones must not grow this table for ever.
        while (this.failures.size > this.cacheMaxEntries) this.failures.delete(this.failures.keys().next().value as string)
      }
      if (isOssCallbackError(err)) throw err
      throw ossError('KEY_FETCH_FAILED', 'unexpected key fetch error', err)
    }
  }

  private fetchUrl (url: string): string {
    const parsed = new URL(url)
    // A key fetched in clear text could be swapped on the way: OSS's host serves https.
    if (parsed.protocol === 'http:' && this.httpsOnlyHosts.has(parsed.hostname)) {
      parsed.protocol = 'https:'
      return parsed.href
    }
    return url
  }

  private async download (url: string): Promise<Buffer> {
    const controller = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; controller.abort() }, this.fetchTimeoutMs)
    try {
      const res = await this.fetchImpl(this.fetchUrl(url), {
        method: 'GET',
        redirect: 'manual',
        signal: controller.signal,
        headers: { accept: 'application/x-pem-file, text/plain, */*' }
      })
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => {})
        throw ossError('KEY_FETCH_FAILED', res.status >= 300 && res.status < 400 ? 'key URL redirected (not followed)' : `key URL answered ${res.status}`)
      }
      const declared = Number(res.headers.get('content-length') ?? 'NaN')
      if (declared > this.maxKeyBytes) {
        await res.body?.cancel().catch(() => {})
        throw ossError('KEY_FETCH_FAILED', 'key response over the size cap')
      }
      return await readCapped(res, this.maxKeyBytes)
    } catch (err) {
      if (timedOut) throw ossError('KEY_FETCH_TIMEOUT', 'key fetch timed out', err)
      if (isOssCallbackError(err)) throw err
      throw ossError('KEY_FETCH_FAILED', 'key fetch failed', err)
    } finally {
      clearTimeout(timer)
    }
  }
}

async function readCapped (res: Response, max: number): Promise<Buffer> {
  if (res.body === null) return Buffer.alloc(0)
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > max) {
      await reader.cancel().catch(() => {})
      throw ossError('KEY_FETCH_FAILED', 'key response over the size cap')
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}

function withCallerTimeout<T> (shared: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(ossError('KEY_FETCH_TIMEOUT', 'no time left for the key fetch'))
    }, Math.max(0, ms))
    shared.then(
      (v) => { clearTimeout(timer); resolve(v) },
      (e: unknown) => { clearTimeout(timer); reject(e as OssCallbackError) }
    )
  })
}
