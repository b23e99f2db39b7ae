import { envSchema } from 'env-schema'
import { invalidOption } from '../errors.js'
import { compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS } from '../protocol/key-url.js'

/** The standalone server's settings, read from the environment. */
export interface ServerConfig {
  /** `HOST`: address to listen on. Default `0.0.0.0`. */
  host: string
  /** `PORT`: TCP port. Default `8080`. */
  port: number
  /** `OSS_CALLBACK_PATH`: the route OSS posts to. Default `/oss/callback`. */
  path: string
  /** `OSS_CALLBACK_PUBLIC_PATH`: the path OSS signed, when a proxy rewrites it. Default: unset. */
  publicPath: string | undefined
  /** `OSS_CALLBACK_KEY_ORIGINS`: comma-separated allowed key origins. */
  keyOrigins: string[]
  /** `OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS`: timeout of one key fetch, ms. Default 2000. */
  keyFetchTimeoutMs: number
  /** `OSS_CALLBACK_DEADLINE_MS`: arrival to reply, ms. Default 4500. */
  deadlineMs: number
  /** `OSS_CALLBACK_BODY_LIMIT_BYTES`: largest body. Default 65536. */
  bodyLimitBytes: number
  /** `LOG_LEVEL`: pino level. Default `info`. */
  logLevel: string
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

const schema = {
  type: 'object',
  properties: {
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    OSS_CALLBACK_PATH: { type: 'string', pattern: '^/[^?#\\s]*$', default: '/oss/callback' },
    OSS_CALLBACK_PUBLIC_PATH: { type: 'string', pattern: '^/[^?#\\s]*$' },
    OSS_CALLBACK_KEY_ORIGINS: { type: 'string', minLength: 1, default: DEFAULT_KEY_ORIGINS.join(',') },
    OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS: { type: 'integer', minimum: 1, maximum: 30_000, default: 2000 },
    OSS_CALLBACK_DEADLINE_MS: { type: 'integer', minimum: 1, maximum: 60_000, default: 4500 },
    OSS_CALLBACK_BODY_LIMIT_BYTES: { type: 'integer', minimum: 1, maximum: 67_108_864, default: 65_536 },
    LOG_LEVEL: { type: 'string', enum: LOG_LEVELS, default: 'info' }
  }
} as const

interface RawEnv {
  HOST: string
  PORT: number
  OSS_CALLBACK_PATH: string
  OSS_CALLBACK_PUBLIC_PATH?: string
  OSS_CALLBACK_KEY_ORIGINS: string
  OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS: number
  OSS_CALLBACK_DEADLINE_MS: number
  OSS_CALLBACK_BODY_LIMIT_BYTES: number
  LOG_LEVEL: string
}

// What each variable must be, in words, for the one-line start-up error.
const RULES: Record<string, string> = {
  HOST: 'a host name or address',
  PORT: 'a whole number from 0 to 65535',
  OSS_CALLBACK_PATH: 'a path starting with / with no query, fragment or spaces',
  OSS_CALLBACK_PUBLIC_PATH: 'a path starting with / with no query, fragment or spaces',
  OSS_CALLBACK_KEY_ORIGINS: 'a comma-separated list of origins such as https://gosspublic.alicdn.com',
  OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS: 'a whole number of milliseconds from 1 to 30000',
  OSS_CALLBACK_DEADLINE_MS: 'a whole number of milliseconds from 1 to 60000',
  OSS_CALLBACK_BODY_LIMIT_BYTES: 'a whole number of bytes from 1 to 67108864',
  LOG_LEVEL: `one of ${LOG_LEVELS.join(', ')}`
}

function badValue (name: string, value: string | undefined): Error {
  return invalidOption(`${name} must be ${RULES[name] ?? 'valid'}, got ${JSON.stringify(value)}`)
}

/** The variables the server reads, for docs and tests. */
export const CONFIG_VARIABLES = Object.keys(schema.properties)

/**
 * Reads and validates the configuration. A bad value throws
 * `OSS_CB_ERR_INVALID_OPTION` whose message names the variable and the rule.
 * Empty variables count as unset.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const data: Record<string, string> = {}
  for (const name of CONFIG_VARIABLES) {
    const v = env[name]
    if (v !== undefined && v !== '') data[name] = v
  }
  let raw: RawEnv
  try {
    raw = envSchema<RawEnv>({ schema: structuredClone(schema) as object, data, env: false })
  } catch (err) {
    const first = /^env\/([A-Z_]+)/.exec((err as Error).message)?.[1]
    if (first !== undefined) throw badValue(first, data[first])
    throw invalidOption((err as Error).message)
  }
  // Integers must be written as integers: "8080abc" or "1e3" are refused, not coerced.
  for (const name of ['PORT', 'OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS', 'OSS_CALLBACK_DEADLINE_MS', 'OSS_CALLBACK_BODY_LIMIT_BYTES']) {
    const text = data[name]
    if (text !== undefined && !/^\d+$/.test(text.trim())) throw badValue(name, text)
  }
  const keyOrigins = raw.OSS_CALLBACK_KEY_ORIGINS.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (keyOrigins.length === 0) throw badValue('OSS_CALLBACK_KEY_ORIGINS', data.OSS_CALLBACK_KEY_ORIGINS)
  try {
    compileKeyUrlPolicy(keyOrigins)
  } catch (err) {
    throw invalidOption(`OSS_CALLBACK_KEY_ORIGINS: ${(err as Error).message.replace(/^Invalid option: (keyOrigins: )?/, '')}`)
  }
  return {
    host: raw.HOST,
    port: raw.PORT,
    path: raw.OSS_CALLBACK_PATH,
    publicPath: raw.OSS_CALLBACK_PUBLIC_PATH,
    keyOrigins,
    keyFetchTimeoutMs: raw.OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS,
    deadlineMs: raw.OSS_CALLBACK_DEADLINE_MS,
    bodyLimitBytes: raw.OSS_CALLBACK_BODY_LIMIT_BYTES,
    logLevel: raw.LOG_LEVEL
  }
}
