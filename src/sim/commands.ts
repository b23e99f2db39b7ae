import { parseVarArgument } from '../protocol/callback-param.js'
import { DEFAULT_KEY_ORIGINS } from '../protocol/key-url.js'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { invalidOption, isOssCallbackError } from '../errors.js'
import { SIM_DEV_CREDENTIALS, type SimCredentials } from './auth.js'
import type { SendRequest } from './send-endpoint.js'
import type { Simulator } from './server.js'

import { DEFAULT_SIM_URL } from './defaults.js'

/** Where a command writes. */
export interface CommandIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
}

const processIo: CommandIo = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) }
}

export const SIM_USAGE = `Usage: oss-callback sim [options]

A local stand-in for OSS that performs upload callbacks exactly as OSS does: PutObject, PostObject,
multipart uploads, GetObject, HeadObject, listings; anything else answers 501 NotImplemented.

Options:
  --port <n>                    TCP port; 0 picks a free one (default: 8090)
  --host <address>              address to listen on (default: 127.0.0.1)
  --data-dir <dir>              keep objects and the signing key on disk here (default: in memory)
  --strict                      refuse private, loopback and IPv6 callback URLs and localhost with 400, as OSS does
  --callback-timeout-ms <ms>    how long to wait for a callback reply, 1 to 60000 (default: 5000, as OSS)
  --max-object-bytes <bytes>    largest object or part accepted (default: 1073741824)
  --public-origin <url>         origin receivers fetch the public key from (default: http://<host>:<port>)
  -h, --help                    show this help

Credentials: OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET, or the printed dev pair when both are unset.
Runs until SIGINT or SIGTERM. Exit status: 0 stopped by a signal; 1 bad options or cannot listen.
`

export const SEND_USAGE = `Usage: oss-callback send <callback-url> [options]

Asks a running simulator to fire a signed callback at <callback-url> (up to 5 separated by ";"), as OSS
would after an upload, and says whether OSS would accept the answer.

Options:
  --sim <url>                   the running simulator (default: ${DEFAULT_SIM_URL})
  --bucket <name>               bucket named in the callback (default: examplebucket)
  --key <object key>            object named in the callback; a stored object's real values are used (default: example/object.txt)
  --size <bytes>                size of an object not stored in the simulator (default: 0)
  --callback-body <template>    body template with \${bucket}, \${object}, \${x:name}, ... (default: common system variables and every --var)
  --callback-body-type <type>   form or json (default: form)
  --callback-host <host>        Host header of the callback (default: the URL's host)
  --var <name=value>            custom callback variable \${x:name}; repeat for more
  --json                        print the whole result as JSON on stdout
  -h, --help                    show this help

Output: the receiver's answer on stdout, the verdict on stderr (a refusal with the receiver's status and body).
Credentials: OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET, or the simulator's dev pair when both are unset.
Exit status: 0 OSS would accept the answer; 2 it would not (the uploader would get 203); 1 any other failure.
`

/** Credentials from OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET, or the dev pair when both are unset. */
export function simCredentialsFromEnv (env: NodeJS.ProcessEnv): { credentials: SimCredentials, dev: boolean } {
  const id = env.OSS_ACCESS_KEY_ID ?? ''
  const secret = env.OSS_ACCESS_KEY_SECRET ?? ''
  if (id === '' && secret === '') return { credentials: SIM_DEV_CREDENTIALS, dev: true }
  if (id === '' || secret === '') throw invalidOption('set both OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET, or neither to use the simulator\'s dev pair')
  return { credentials: { accessKeyId: id, accessKeySecret: secret }, dev: false }
}

function integer (name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw invalidOption(`--${name} must be a whole number from ${min} to ${max}`)
  return Number(text)
}

function parse (argv: string[], options: NonNullable<ParseArgsConfig['options']>, positionals: boolean): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: positionals, strict: true })
  } catch (err) {
    throw invalidOption((err as Error).message)
  }
}

/**
 * `oss-callback sim`: starts the simulator, prints how to use it, and runs until
 * SIGINT/SIGTERM. Returns the running simulator.
 */
export async function runSimCommand (argv: string[], env: NodeJS.ProcessEnv = process.env, io: CommandIo = processIo, handleSignals = true): Promise<Simulator | undefined> {
  const { values } = parse(argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    'data-dir': { type: 'string' },
    strict: { type: 'boolean' },
    'callback-timeout-ms': { type: 'string' },
    'max-object-bytes': { type: 'string' },
    'public-origin': { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }, false)
  if (values.help === true) {
    io.stdout(SIM_USAGE)
    return undefined
  }
  const { credentials, dev } = simCredentialsFromEnv(env)
  const callbackTimeoutMs = integer('callback-timeout-ms', values['callback-timeout-ms'] as string | undefined, 1, 60_000)
  const maxObjectBytes = integer('max-object-bytes', values['max-object-bytes'] as string | undefined, 1, Number.MAX_SAFE_INTEGER)
  const port = integer('port', values.port as string | undefined, 0, 65535)
  const dataDir = values['data-dir'] as string | undefined
  const strict = values.strict === true
  // Loaded here so that `send` does not pay for Fastify and the simulator at start.
  const { startSimulator } = await import('./server.js')
  const sim = await startSimulator({
    ...(port === undefined ? {} : { port }),
    ...(values.host === undefined ? {} : { host: values.host as string }),
    ...(dataDir === undefined ? {} : { dataDir }),
    ...(callbackTimeoutMs === undefined ? {} : { callbackTimeoutMs }),
    ...(maxObjectBytes === undefined ? {} : { maxObjectBytes }),
    ...(values['public-origin'] === undefined ? {} : { publicOrigin: values['public-origin'] as string }),
    strict,
    credentials,
    log: (line) => { io.stdout(`${new Date().toISOString()} ${line}\n`) }
  })
  if (handleSignals) {
    const { default: closeWithGrace } = await import('close-with-grace')
    closeWithGrace({ delay: 5000 }, async () => { await sim.close() })
  }
  io.stdout([
    `oss-callback simulator listening on ${sim.origin}`,
    `  endpoint     ${sim.origin}  (path style /<bucket>/<key>, or virtual-hosted Host: <bucket>.oss-<region>.aliyuncs.com)`,
    dev
      ? `  credentials  OSS_ACCESS_KEY_ID=${credentials.accessKeyId} OSS_ACCESS_KEY_SECRET=${credentials.accessKeySecret}  (the fixed dev pair; set both variables to use your own)`
      : `  credentials  OSS_ACCESS_KEY_ID=${credentials.accessKeyId} and the secret from OSS_ACCESS_KEY_SECRET`,
    `  callback key ${sim.publicKeyUrl}`,
    // The list replaces the default, so it keeps OSS's production origins: real callbacks still verify.
    `  receivers trust it with OSS_CALLBACK_KEY_ORIGINS=${[...DEFAULT_KEY_ORIGINS, new URL(sim.publicKeyUrl).origin].join(',')}`,
    `  objects      ${dataDir === undefined ? 'in memory (gone on exit)' : `on disk in ${dataDir}`}`,
    `  callbacks    ${strict ? 'strict: private and loopback URLs refused, as OSS does' : 'loopback and private URLs allowed (--strict refuses them as OSS does)'}`,
    ''
  ].join('\n'))
  return sim
}

/** `oss-callback send`: returns the exit code (0 accepted, 2 not accepted, 1 other failure). */
export async function runSendCommand (argv: string[], env: NodeJS.ProcessEnv = process.env, io: CommandIo = processIo): Promise<number> {
  const { values, positionals } = parse(argv, {
    sim: { type: 'string' },
    bucket: { type: 'string' },
    key: { type: 'string' },
    size: { type: 'string' },
    'callback-body': { type: 'string' },
    'callback-body-type': { type: 'string' },
    'callback-host': { type: 'string' },
    var: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }, true)
  if (values.help === true) {
    io.stdout(SEND_USAGE)
    return 0
  }
  if (positionals.length !== 1) throw invalidOption(`send takes exactly one <callback-url>, ${positionals.length} given (oss-callback send --help)`)
  const type = (values['callback-body-type'] as string | undefined) ?? 'form'
  if (type !== 'form' && type !== 'json') throw invalidOption('--callback-body-type must be form or json')
  const vars: Record<string, string> = {}
  for (const item of (values.var as string[] | undefined) ?? []) {
    let parsed: [string, string]
    try {
      parsed = parseVarArgument(item)
    } catch (err) {
      // The same words as `upload`: the reason says which rule the name breaks.
      if (isOssCallbackError(err) && err.reason !== undefined) err.message = `${err.message}: ${err.reason}`
      throw err
    }
    vars[parsed[0]] = parsed[1]
  }
  const size = integer('size', values.size as string | undefined, 0, 1024 * 1024 * 1024)
  const request: SendRequest = {
    callbackUrl: positionals[0] as string,
    callbackBodyType: type,
    vars,
    ...(values.bucket === undefined ? {} : { bucket: values.bucket as string }),
    ...(values.key === undefined ? {} : { key: values.key as string }),
    ...(size === undefined ? {} : { size }),
    ...(values['callback-body'] === undefined ? {} : { callbackBody: values['callback-body'] as string }),
    ...(values['callback-host'] === undefined ? {} : { callbackHost: values['callback-host'] as string })
  }
  const { credentials } = simCredentialsFromEnv(env)
  const { formatSendReport, sendTestCallback } = await import('./send.js')
  const result = await sendTestCallback({ simUrl: (values.sim as string | undefined) ?? DEFAULT_SIM_URL, credentials, request })
  if (values.json === true) {
    io.stdout(`${JSON.stringify(result, null, 2)}\n`)
  } else {
    const last = result.attempts.at(-1)
    // stdout carries what the uploader would get back: a refusal's body goes to the report on stderr.
    if (last?.body !== undefined && last.status === 200) io.stdout(last.body.endsWith('\n') ? last.body : `${last.body}\n`)
    io.stderr(formatSendReport(result))
  }
  return result.accepted ? 0 : 2
}
