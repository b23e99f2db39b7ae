import { isOssCallbackError } from '../errors.js'
import { parseUploadArgs, UPLOAD_USAGE } from './args.js'
import type { createProgressReporter, ProgressStream } from './progress.js'
import type { UploadDependencies } from './upload.js'

/** Where `oss-callback upload` reads and writes; the process's own streams and environment by default. */
export interface UploadCommandIo {
  env: Readonly<Record<string, string | undefined>>
  stdout: { write: (chunk: string) => boolean }
  stderr: ProgressStream
  /** Passed on to `upload()` (PostObject `fetch`, clock). */
  deps?: Omit<UploadDependencies, 'onProgress'>
}

/**
 * An AbortSignal for `upload()` that the first Ctrl-C (SIGINT) aborts, so that an open
 * multipart upload is aborted rather than left with billed parts; a second Ctrl-C quits at once.
 */
export function abortOnSigint (stderr: { write: (chunk: string) => boolean } = process.stderr): AbortSignal {
  const controller = new AbortController()
  process.once('SIGINT', () => {
    stderr.write('\noss-callback: cancelling (Ctrl-C again to quit at once)\n')
    controller.abort()
    process.once('SIGINT', () => process.exit(130))
  })
  return controller.signal
}

/**
 * `oss-callback upload`: stdout gets only the JSON OSS relayed from the callback
 * server; progress and the summary go to stderr. Returns the exit code: 0 callback
 * answered, 2 stored but the callback failed (OSS 203), 1 anything else, usage
 * errors included.
 */
export async function runUploadCommand (argv: readonly string[], io: UploadCommandIo): Promise<number> {
  // urllib (under ali-oss) prints a multi-line "callback twice" warning with a stack when a
  // streamed upload meets a refused connection; the result line already says what failed.
  const warn = console.warn
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].startsWith('[urllib:warn]')) return
    warn(...args)
  }
  try {
    return await run(argv, io)
  } finally {
    console.warn = warn
  }
}

async function run (argv: readonly string[], io: UploadCommandIo): Promise<number> {
  let reporter: ReturnType<typeof createProgressReporter> | undefined
  try {
    const parsed = parseUploadArgs(argv, io.env)
    if (parsed.help) {
      io.stdout.write(UPLOAD_USAGE)
      return 0
    }
    // Loaded after the arguments: `upload --help` and a usage error stay fast without ali-oss.
    const [{ createProgressReporter }, { describeResult }, { upload }] = await Promise.all([import('./progress.js'), import('./result.js'), import('./upload.js')])
    reporter = createProgressReporter(io.stderr, parsed.options.post === true ? 'post' : 'upload')
    const result = await upload(parsed.options, { ...io.deps, onProgress: reporter.update })
    reporter.stop()
    reporter = undefined
    if (result.outcome === 'callback-ok') {
      io.stdout.write(result.reply.endsWith('\n') ? result.reply : `${result.reply}\n`)
    }
    io.stderr.write(`oss-callback: ${describeResult(result)}\n`)
    return result.exitCode
  } catch (err) {
    reporter?.stop()
    if (isOssCallbackError(err)) {
      const reason = err.code === 'OSS_CB_ERR_INVALID_CALLBACK_PARAM' && err.reason !== undefined ? `: ${err.reason}` : ''
      const hint = err.code === 'OSS_CB_ERR_INVALID_OPTION' ? '; see oss-callback upload --help' : ''
      io.stderr.write(`oss-callback upload: ${err.code}: ${err.message}${reason}${hint}\n`)
    } else {
      io.stderr.write(`oss-callback upload: ${(err as Error)?.message ?? String(err)}\n`)
    }
    return 1
  }
}
