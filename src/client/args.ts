import { parseVarArgument } from '../protocol/callback-param.js'
import { parseArgs } from 'node:util'
import { invalidOption } from '../errors.js'
import type { SignatureVersion, UploadOptions } from './options.js'

export const UPLOAD_USAGE = `Usage: oss-callback upload <file> --endpoint <url> --bucket <name> --callback-url <url> [options]

Uploads <file> to OSS (or the local simulator) with an upload callback and prints the
JSON that OSS relayed from the callback server on stdout. Progress goes to stderr.

Required:
  --endpoint <url>              OSS endpoint with scheme (https://oss-cn-hangzhou.aliyuncs.com, http://127.0.0.1:8090)
  --bucket <name>               bucket name
  --callback-url <url>          callback URL; up to 5 separated by ";"

Options:
  --key <object key>            object key (default: the file's base name)
  --callback-body <template>    body template with \${bucket}, \${object}, \${x:name}, ... (default: common system variables and every --var)
  --callback-body-type <type>   json or form (default: json)
  --callback-host <host>        Host header of the callback (default: the URL's host)
  --callback-sni                ask OSS to send TLS SNI to an https callback URL
  --var <name=value>            custom callback variable \${x:name}; repeat for more
  --post                        upload with a PostObject form, as a browser would
  --multipart-threshold <bytes> multipart upload from this size on (default: 100MiB)
  --part-size <bytes>           multipart part size, at least 100KiB (default: 8MiB)
  --parallel <n>                parts uploaded at the same time (default: 4)
  --content-type <type>         Content-Type of the object (default: guessed from the key; application/octet-stream with --post)
  --region <id>                 region, cn-hangzhou or oss-cn-hangzhou (default: read from an oss-<region>.aliyuncs.com endpoint)
  --signature-version <1|4>     request signature version (default: 4)
  --timeout <ms>                timeout of each request to OSS (default: 60000)
  -h, --help                    show this help

Sizes take a plain number of bytes or a suffix: 512KiB, 8MiB, 1GiB (K, M, G mean the same).
Credentials: OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET and, for STS, OSS_SESSION_TOKEN.
Exit status: 0 callback answered; 2 object stored but the callback failed (OSS answered 203); 1 anything else.
`

const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 }

/** `8388608`, `8MiB`, `8M`, `512KiB` → bytes. */
export function parseByteSize (flag: string, text: string): number {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim())
  const unit = m === null ? undefined : UNITS[(m[2] ?? '').toLowerCase()]
  if (m === null || unit === undefined) throw invalidOption(`${flag}: ${JSON.stringify(text)} is not a size in bytes (e.g. 1048576 or 8MiB)`)
  const value = Number(m[1]) * unit
  if (!Number.isSafeInteger(value)) throw invalidOption(`${flag}: ${JSON.stringify(text)} is too large`)
  return value
}

function parseInteger (flag: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw invalidOption(`${flag}: ${JSON.stringify(text)} is not a whole number`)
  return Number(text)
}

/** What the command line asked for: help, or an upload. */
export type ParsedUploadArgs = { help: true } | { help: false, options: UploadOptions }

/**
 * Reads `oss-callback upload` arguments (after the command name) and the
 * credentials from `env`. Throws `OSS_CB_ERR_INVALID_OPTION` for a usage error;
 * values are checked further by `resolveUploadOptions`.
 */
export function parseUploadArgs (argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParsedUploadArgs {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        endpoint: { type: 'string' },
        bucket: { type: 'string' },
        key: { type: 'string' },
        'callback-url': { type: 'string' },
        'callback-body': { type: 'string' },
        'callback-body-type': { type: 'string' },
        'callback-host': { type: 'string' },
        'callback-sni': { type: 'boolean' },
        var: { type: 'string', multiple: true },
        'part-size': { type: 'string' },
        'multipart-threshold': { type: 'string' },
        parallel: { type: 'string' },
        post: { type: 'boolean' },
        region: { type: 'string' },
        'signature-version': { type: 'string' },
        'content-type': { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    // parseArgs names the flag in its message ("Unknown option '--bukcet'"); keep only its first line.
    const first = String((err as Error).message).split('\n')[0] ?? 'bad arguments'
    throw invalidOption(first.replace(/\. To specify a positional argument.*$/, ''))
  }
  const { values: v, positionals } = parsed
  if (v.help === true) return { help: true }
  if (positionals.length !== 1) throw invalidOption(positionals.length === 0 ? 'give the file to upload' : 'give exactly one file to upload')
  for (const flag of ['endpoint', 'bucket', 'callback-url'] as const) {
    if (v[flag] === undefined) throw invalidOption(`--${flag} is required`)
  }

  const bodyType = v['callback-body-type']
  if (bodyType !== undefined && bodyType !== 'json' && bodyType !== 'form') throw invalidOption('--callback-body-type: must be json or form')
  let signatureVersion: SignatureVersion | undefined
  if (v['signature-version'] !== undefined) {
    const s = v['signature-version'].replace(/^v/i, '')
    if (s !== '1' && s !== '4') throw invalidOption('--signature-version: must be 1 or 4')
    signatureVersion = s === '1' ? 1 : 4
  }
  const vars: Record<string, string> = {}
  for (const text of v.var ?? []) {
    const [name, value] = parseVarArgument(text)
    const full = name.startsWith('x:') ? name : `x:${name}`
    if (Object.hasOwn(vars, full)) throw invalidOption(`--var: ${JSON.stringify(name)} given twice`)
    vars[full] = value
  }
  if (env.OSS_ACCESS_KEY_ID === undefined || env.OSS_ACCESS_KEY_ID === '' || env.OSS_ACCESS_KEY_SECRET === undefined || env.OSS_ACCESS_KEY_SECRET === '') {
    throw invalidOption('set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the environment')
  }
  const token = env.OSS_SESSION_TOKEN

  const options: UploadOptions = {
    file: positionals[0] as string,
    endpoint: v.endpoint as string,
    bucket: v.bucket as string,
    accessKeyId: env.OSS_ACCESS_KEY_ID,
    accessKeySecret: env.OSS_ACCESS_KEY_SECRET,
    callback: {
      url: v['callback-url'] as string,
      ...(v['callback-body'] === undefined ? {} : { body: v['callback-body'] }),
      ...(bodyType === undefined ? {} : { bodyType }),
      ...(v['callback-host'] === undefined ? {} : { host: v['callback-host'] }),
      ...(v['callback-sni'] === true ? { sni: true } : {}),
      vars
    },
    post: v.post === true
  }
  if (v.key !== undefined) options.key = v.key
  if (token !== undefined && token !== '') options.securityToken = token
  if (v.region !== undefined) options.region = v.region
  if (signatureVersion !== undefined) options.signatureVersion = signatureVersion
  if (v['part-size'] !== undefined) options.partSizeBytes = parseByteSize('--part-size', v['part-size'])
  if (v['multipart-threshold'] !== undefined) options.multipartThresholdBytes = parseByteSize('--multipart-threshold', v['multipart-threshold'])
  if (v.parallel !== undefined) options.parallelParts = parseInteger('--parallel', v.parallel)
  if (v['content-type'] !== undefined) options.contentType = v['content-type']
  if (v.timeout !== undefined) options.requestTimeoutMs = parseInteger('--timeout', v.timeout)
  return { help: false, options }
}
