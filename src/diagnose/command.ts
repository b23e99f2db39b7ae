import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { isOssCallbackError } from '../errors.js'
import { KeyProvider, type FetchLike } from '../keys/provider.js'
import { compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS } from '../protocol/key-url.js'
import { selectSignatureVerifier, type SignatureVerifier } from '../receiver/signature-verifier.js'
import { DIAGNOSE_EXIT, diagnoseRequest } from './engine.js'
import { parseRequestFile, RequestFileError } from './request-file.js'

/** Where `oss-callback diagnose` reads and writes. */
export interface DiagnoseCommandIo {
  env: Readonly<Record<string, string | undefined>>
  stdout: { write: (chunk: string) => unknown }
  stderr: { write: (chunk: string) => unknown }
  /** Read for `-`. Default `process.stdin`. */
  stdin?: AsyncIterable<Buffer | string>
  /** Key fetches (tests). Default `globalThis.fetch`. */
  fetch?: FetchLike
  /** The signature check. Default: chosen by the start-up self-test. */
  signatureVerifier?: SignatureVerifier
}

export const DIAGNOSE_USAGE = `Usage: oss-callback diagnose <file | -> [options]

Reads one captured callback (a raw HTTP request: request line, headers, blank
line, body; see OSS_CALLBACK_CAPTURE_DIR) and shows each step of its verification,
then every variant of the string to sign tried, and which one verifies.

Options (each defaults to its environment variable, as for serve):
  --path <path>           the route OSS posts to          (OSS_CALLBACK_PATH)
  --public-path <path>    the path OSS signed             (OSS_CALLBACK_PUBLIC_PATH)
  --key-origins <list>    comma-separated key origins     (OSS_CALLBACK_KEY_ORIGINS)
  -h, --help

Exit status: 0 verifies as received, 2 only a variant verifies (the hint says
why), 3 nothing verifies, 1 usage error.
`

const PATH = /^\/[^?#\s]*$/

class UsageError extends Error {}

function pathOption (name: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  if (!PATH.test(value)) throw new UsageError(`${name} must start with / and hold no query, got ${JSON.stringify(value)}`)
  return value
}

async function readAll (stream: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk)
  return Buffer.concat(chunks)
}

/** `oss-callback diagnose`: returns the exit code (0, 2, 3; 1 for a usage error). */
export async function runDiagnoseCommand (argv: readonly string[], io: DiagnoseCommandIo): Promise<number> {
  let values: { path?: string, 'public-path'?: string, 'key-origins'?: string, help?: boolean }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: { path: { type: 'string' }, 'public-path': { type: 'string' }, 'key-origins': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true
    }))
  } catch (err) {
    io.stderr.write(`oss-callback diagnose: ${(err as Error).message.split('\n')[0] ?? ''}\n${DIAGNOSE_USAGE}`)
    return 1
  }
  if (values.help === true) {
    io.stdout.write(DIAGNOSE_USAGE)
    return 0
  }
  try {
    if (positionals.length !== 1) throw new UsageError('name one capture file, or - for stdin')
    const path = pathOption('--path', values.path ?? io.env.OSS_CALLBACK_PATH)
    const publicPath = pathOption('--public-path', values['public-path'] ?? io.env.OSS_CALLBACK_PUBLIC_PATH)
    const originsText = values['key-origins'] ?? io.env.OSS_CALLBACK_KEY_ORIGINS
    const origins = originsText === undefined || originsText === '' ? DEFAULT_KEY_ORIGINS : originsText.split(',').map((s) => s.trim()).filter((s) => s !== '')
    const policy = compileKeyUrlPolicy(origins)
    const source = positionals[0] as string
    let bytes: Buffer
    try {
      bytes = source === '-' ? await readAll(io.stdin ?? process.stdin) : await readFile(source)
    } catch (err) {
      throw new UsageError(`cannot read ${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    const request = parseRequestFile(bytes)
    const keys = new KeyProvider(io.fetch === undefined ? {} : { fetch: io.fetch })
    const check = io.signatureVerifier ?? selectSignatureVerifier().verify
    const diagnosis = await diagnoseRequest(request, { path, publicPath, policy, keys, check })
    io.stdout.write(`${diagnosis.lines.join('\n')}\n`)
    return DIAGNOSE_EXIT[diagnosis.outcome]
  } catch (err) {
    if (err instanceof UsageError || err instanceof RequestFileError) {
      io.stderr.write(`oss-callback diagnose: ${err.message}\n`)
      return 1
    }
    if (isOssCallbackError(err) && err.code === 'OSS_CB_ERR_INVALID_OPTION') {
      io.stderr.write(`oss-callback diagnose: ${err.message}\n`)
      return 1
    }
    throw err
  }
}
