import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { invalidOption } from '../errors.js'
import { createRateLimiter, DEFAULT_DIAGNOSES_PER_SECOND, type RateLimiter } from './rate-limit.js'

/** A request as the HTTP server received it, enough to write it back out. */
export interface CapturedRequest {
  method: string
  /** The raw request target. */
  url: string
  /** `1.1` or `1.0`. Default `1.1`. */
  httpVersion?: string | undefined
  /** Node's `req.rawHeaders`: names and values alternating, as received (case, order, repeats). */
  rawHeaders: readonly string[]
  /** The body bytes; absent when the body was never read (a refusal before the body parser). */
  body?: Uint8Array | undefined
}

/** Options of {@link createCaptureWriter}. */
export interface CaptureWriterOptions {
  /** The directory (created with mode 0700 when missing). */
  dir: string
  /** Captures kept; the oldest goes first. Default 20. */
  max?: number
  /** Largest capture file, in bytes: a longer body is cut. Default 131072. */
  maxBytes?: number
  /** Captures written per second at most. Default 20. */
  perSecond?: number
  /** Clock in ms, for file names and the rate limit. Default `Date.now`. */
  now?: () => number
  /** Called when a capture cannot be written. Must not throw. */
  onError?: (err: unknown) => void
}

/** Keeps the last refused callbacks as raw HTTP files. */
export interface CaptureWriter {
  readonly dir: string
  /** Writes one capture unless over the rate; resolves with its path, or `undefined` when skipped or failed. Never rejects. */
  write: (request: CapturedRequest) => Promise<string | undefined>
  /** Resolves when every write started so far has finished. */
  flush: () => Promise<void>
}

export const DEFAULT_CAPTURE_MAX = 20
export const DEFAULT_CAPTURE_MAX_BYTES = 128 * 1024
const FILE = /^capture-\d{13}-\d{6}\.http$/

/** The raw HTTP text of a request: request line, headers, blank line, body; cut at `maxBytes`. */
export function formatCapture (request: CapturedRequest, maxBytes = Number.MAX_SAFE_INTEGER): Buffer {
  let head = `${request.method} ${request.url} HTTP/${request.httpVersion ?? '1.1'}\r\n`
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) head += `${request.rawHeaders[i] as string}: ${request.rawHeaders[i + 1] as string}\r\n`
  head += '\r\n'
  // Node hands the target and header values over as latin1 text: latin1 gives back the bytes received.
  const bytes = Buffer.concat([Buffer.from(head, 'latin1'), request.body ?? Buffer.alloc(0)])
  return bytes.length <= maxBytes ? bytes : bytes.subarray(0, maxBytes)
}

function captureName (at: number, seq: number): string {
  return `capture-${String(at).padStart(13, '0')}-${String(seq).padStart(6, '0')}.http`
}

function whole (name: string, value: number | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1 || value > max) throw invalidOption(`${name} must be a whole number from 1 to ${max}, got ${String(value)}`)
  return value
}

/**
 * A capture writer. Files are named `capture-<ms>-<seq>.http`, so that their
 * names sort oldest first; each is written to a temporary name with mode 0600
 * and renamed, so a reader never sees half a capture.
 */
export function createCaptureWriter (options: CaptureWriterOptions): CaptureWriter {
  const dir = options.dir
  if (typeof dir !== 'string' || dir === '') throw invalidOption('captureDir must be a directory path')
  const max = whole('captureMax', options.max, DEFAULT_CAPTURE_MAX, 100_000)
  const maxBytes = whole('captureMaxBytes', options.maxBytes, DEFAULT_CAPTURE_MAX_BYTES, 64 * 1024 * 1024)
  const now = options.now ?? Date.now
  const limiter: RateLimiter = createRateLimiter(options.perSecond ?? DEFAULT_DIAGNOSES_PER_SECOND, now)
  const onError = options.onError ?? (() => {})
  let files: string[] | undefined
  let seq = 0
  // One write at a time: rotation then sees every file this process wrote.
  let chain: Promise<unknown> = Promise.resolve()

  async function known (): Promise<string[]> {
    if (files === undefined) {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      files = (await readdir(dir)).filter((f) => FILE.test(f)).sort()
    }
    return files
  }

  async function writeOne (bytes: Buffer, at: number): Promise<string> {
    const list = await known()
    let name = captureName(at, seq)
    seq = (seq + 1) % 1_000_000
    // Keep names increasing even when the clock steps back.
    const last = list.at(-1)
    if (last !== undefined && name <= last) {
      const lastAt = Number(last.slice(8, 21))
      const lastSeq = Number(last.slice(22, 28))
      name = lastSeq < 999_999 ? captureName(lastAt, lastSeq + 1) : captureName(lastAt + 1, 0)
    }
    const path = join(dir, name)
    const tmp = join(dir, `.${name}.tmp`)
    const handle = await open(tmp, 'wx', 0o600)
    try {
      await handle.writeFile(bytes)
    } finally {
      await handle.close()
    }
    await rename(tmp, path)
    list.push(name)
    while (list.length > max) {
      const oldest = list.shift() as string
      await unlink(join(dir, oldest)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
    }
    return path
  }

  return {
    dir,
    write (request) {
      if (!limiter.take()) return Promise.resolve(undefined)
      let bytes: Buffer
      try {
        bytes = formatCapture(request, maxBytes)
      } catch (err) {
        onError(err)
        return Promise.resolve(undefined)
      }
      const at = now()
      const result = chain.then(() => writeOne(bytes, at)).catch((err: unknown) => { onError(err); return undefined })
      chain = result
      return result
    },
    flush: async () => { await chain }
  }
}
