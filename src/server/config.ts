import { envSchema } from 'env-schema'
import { parseDuration, parseDurationList } from '../duration.js'
import { invalidOption } from '../errors.js'
import { compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS } from '../protocol/key-url.js'
import { checkForwardSecret, checkForwardUrl } from './forward.js'
import { BUCKET_NAME, type PostSignatureVersion } from '../protocol/post-policy.js'
import { createUploadTickets } from '../tickets/issuer.js'
import type { OssCredentials } from '../reconcile/oss.js'

/** Upload tickets, on when `OSS_CALLBACK_TICKET_TOKEN` is set. */
export interface TicketConfig {
  /** `OSS_CALLBACK_TICKET_TOKEN`: the bearer token app backends send to get tickets (16+ characters). */
  token: string
  /** `OSS_CALLBACK_TICKET_PATH`: the ticket endpoint. Default `/oss/upload-tickets`. */
  path: string
  /** `OSS_ACCESS_KEY_ID`. */
  accessKeyId: string
  /** `OSS_ACCESS_KEY_SECRET`. */
  accessKeySecret: string
  /** `OSS_BUCKET`. */
  bucket: string
  /** `OSS_ENDPOINT`, such as `https://oss-cn-hangzhou.aliyuncs.com`. */
  endpoint: string
  /** `OSS_REGION`, such as `cn-hangzhou`; required for V4. */
  region: string | undefined
  /** `OSS_CALLBACK_PUBLIC_URL`: the callback URL OSS calls, pinned in every policy. */
  callbackUrl: string
  /** `OSS_CALLBACK_UPLOAD_PREFIX`. Default `uploads/`. */
  uploadPrefix: string
  /** `OSS_CALLBACK_TICKET_EXPIRY_SECONDS`. Default 600. */
  expirySeconds: number
  /** `OSS_CALLBACK_TICKET_GRACE_SECONDS`: callbacks accepted this long after expiry. Default 3600. */
  callbackGraceSeconds: number
  /** `OSS_CALLBACK_TICKET_MAX_SIZE_BYTES`. Default 104857600. */
  maxSizeBytes: number
  /** `OSS_CALLBACK_TICKET_CONTENT_TYPES`: comma-separated allowlist. Default: any. */
  contentTypes: string[] | undefined
  /** `OSS_CALLBACK_TICKET_SIGNATURE_VERSION`: `v4` (default) or `v1`. */
  signatureVersion: PostSignatureVersion
  /** `OSS_CALLBACK_ALLOW_WITHOUT_TICKET`: accept callbacks that carry no ticket. Default false. */
  allowCallbacksWithoutTicket: boolean
  /** `OSS_CALLBACK_REDIS_URL`: share tickets between instances. Default: in memory. */
  redisUrl: string | undefined
}

/** The reconciliation schedule, on when `OSS_CALLBACK_RECONCILE_EVERY` is set. */
export interface ReconcileConfig {
  /** `OSS_CALLBACK_RECONCILE_EVERY`: from the end of one sweep to the start of the next, ms. */
  everyMs: number
  /** `OSS_CALLBACK_RECONCILE_WINDOW`: each sweep looks this far back, ms (at most the retention). Default 24 h. */
  windowMs: number
  /** `OSS_CALLBACK_RECONCILE_SETTLE`: objects younger than this are left alone, ms. Default 2 min. */
  settleMs: number
  /** `OSS_CALLBACK_RECONCILE_PREFIXES`, split on commas. */
  prefixes: string[]
  /** `OSS_BUCKET`. */
  bucket: string
  /** `OSS_ENDPOINT`. */
  endpoint?: string
  /** `OSS_REGION`, used when no endpoint is given. */
  region?: string
  /** `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and optional `OSS_SESSION_TOKEN`. */
  credentials: OssCredentials
}

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
  /** `OSS_CALLBACK_BUCKETS`: comma-separated buckets whose callbacks are accepted. Default: unset (any bucket). */
  buckets?: string[] | undefined
  /** `OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS`: timeout of one key fetch, ms. Default 2000. */
  keyFetchTimeoutMs: number
  /** `OSS_CALLBACK_DEADLINE_MS`: arrival to reply, ms. Default 4500. */
  deadlineMs: number
  /** `OSS_CALLBACK_BODY_LIMIT_BYTES`: largest body. Default 65536. */
  bodyLimitBytes: number
  /** `LOG_LEVEL`: pino level. Default `info`. */
  logLevel: string
  /** `OSS_CALLBACK_CAPTURE_DIR`: keep refused callbacks there as raw HTTP files. Default: unset (off). */
  captureDir?: string | undefined
  /** `OSS_CALLBACK_CAPTURE_MAX`: captures kept, oldest first out. Default 20. */
  captureMax?: number
  /** `OSS_CALLBACK_FORWARD_URL`: forward mode's upstream app (http or https). Default: unset (no forwarding). */
  forwardUrl?: string | undefined
  /** `OSS_CALLBACK_FORWARD_SECRET`: the Standard Webhooks `whsec_…` secret; required with a forward URL. */
  forwardSecret?: string | undefined
  /** `OSS_CALLBACK_FORWARD_TIMEOUT_MS`: one forward, ms, never beyond the callback's time left. Default 3500. */
  forwardTimeoutMs?: number
  /** `OSS_CALLBACK_FORWARD_MAX_SOCKETS`: open connections to the upstream at most. Default 64. */
  forwardMaxSockets?: number
  /** Upload tickets; `undefined` (off) unless `OSS_CALLBACK_TICKET_TOKEN` is set. */
  tickets: TicketConfig | undefined
  /**
   * `OSS_CALLBACK_DATABASE_URL`: the durable event log of forward mode, `sqlite:<path>` or `postgres://…`;
   * undefined (`none`) forwards directly, recording nothing. Default in forward mode: {@link DEFAULT_DATABASE_URL}.
   */
  databaseUrl?: string | undefined
  /** `OSS_CALLBACK_ON_UPSTREAM_FAILURE`: what OSS gets when the app fails and the event is queued. Default `refuse`. */
  onUpstreamFailure?: 'refuse' | 'accept'
  /** `OSS_CALLBACK_RETRY_SCHEDULE`: delays between background attempts, ms; the last repeats. Default 5s,5m,30m,2h,5h,10h. */
  retryScheduleMs?: number[]
  /** `OSS_CALLBACK_RETRY_FOR`: how long an event is retried before it is dead, ms. Default 3d. */
  retryForMs?: number
  /** `OSS_CALLBACK_DELIVERY_CONCURRENCY`: background attempts at once. Default 16. */
  deliveryConcurrency?: number
  /** `OSS_CALLBACK_RETENTION`: how long delivered and rejected events are kept, ms. Default 7d. */
  retentionMs?: number
  /** The reconciliation schedule; `undefined` (off) unless `OSS_CALLBACK_RECONCILE_EVERY` is set. */
  reconcile?: ReconcileConfig | undefined
}

/** Where forward mode records events unless told otherwise (relative to the working directory). */
export const DEFAULT_DATABASE_URL = 'sqlite:./data/oss-callback.sqlite'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

const schema = {
  type: 'object',
  properties: {
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    OSS_CALLBACK_PATH: { type: 'string', pattern: '^/[^?#\\s]*$', default: '/oss/callback' },
    OSS_CALLBACK_PUBLIC_PATH: { type: 'string', pattern: '^/[^?#\\s]*$' },
    OSS_CALLBACK_KEY_ORIGINS: { type: 'string', minLength: 1, default: DEFAULT_KEY_ORIGINS.join(',') },
    OSS_CALLBACK_BUCKETS: { type: 'string' },
    OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS: { type: 'integer', minimum: 1, maximum: 30_000, default: 2000 },
    OSS_CALLBACK_DEADLINE_MS: { type: 'integer', minimum: 1, maximum: 60_000, default: 4500 },
    OSS_CALLBACK_BODY_LIMIT_BYTES: { type: 'integer', minimum: 1, maximum: 67_108_864, default: 65_536 },
    OSS_CALLBACK_CAPTURE_DIR: { type: 'string', minLength: 1 },
    OSS_CALLBACK_CAPTURE_MAX: { type: 'integer', minimum: 1, maximum: 10_000, default: 20 },
    LOG_LEVEL: { type: 'string', enum: LOG_LEVELS, default: 'info' },
    OSS_CALLBACK_FORWARD_URL: { type: 'string', minLength: 1 },
    OSS_CALLBACK_FORWARD_SECRET: { type: 'string', minLength: 1 },
    OSS_CALLBACK_FORWARD_TIMEOUT_MS: { type: 'integer', minimum: 1, maximum: 60_000, default: 3500 },
    OSS_CALLBACK_FORWARD_MAX_SOCKETS: { type: 'integer', minimum: 1, maximum: 10_000, default: 64 },
    OSS_CALLBACK_TICKET_TOKEN: { type: 'string', minLength: 16, pattern: '^\\S+$' },
    OSS_CALLBACK_TICKET_PATH: { type: 'string', pattern: '^/[^?#\\s]*$', default: '/oss/upload-tickets' },
    OSS_ACCESS_KEY_ID: { type: 'string' },
    OSS_ACCESS_KEY_SECRET: { type: 'string' },
    OSS_BUCKET: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$' },
    OSS_ENDPOINT: { type: 'string' },
    OSS_REGION: { type: 'string', pattern: '^(oss-)?[a-z0-9-]+$' },
    OSS_CALLBACK_PUBLIC_URL: { type: 'string', pattern: '^https?://' },
    OSS_CALLBACK_UPLOAD_PREFIX: { type: 'string', default: 'uploads/' },
    OSS_CALLBACK_TICKET_EXPIRY_SECONDS: { type: 'integer', minimum: 1, maximum: 604_800, default: 600 },
    OSS_CALLBACK_TICKET_GRACE_SECONDS: { type: 'integer', minimum: 0, maximum: 604_800, default: 3600 },
    OSS_CALLBACK_TICKET_MAX_SIZE_BYTES: { type: 'integer', minimum: 1, maximum: 5_368_709_120, default: 104_857_600 },
    OSS_CALLBACK_TICKET_CONTENT_TYPES: { type: 'string' },
    OSS_CALLBACK_TICKET_SIGNATURE_VERSION: { type: 'string', enum: ['v4', 'v1'], default: 'v4' },
    OSS_CALLBACK_ALLOW_WITHOUT_TICKET: { type: 'string', enum: ['true', 'false'], default: 'false' },
    OSS_CALLBACK_REDIS_URL: { type: 'string', pattern: '^rediss?://' },
    OSS_CALLBACK_DATABASE_URL: { type: 'string', pattern: '^(none|sqlite:.+|postgres(ql)?://.+)$' },
    OSS_CALLBACK_ON_UPSTREAM_FAILURE: { type: 'string', enum: ['refuse', 'accept'], default: 'refuse' },
    OSS_CALLBACK_RETRY_SCHEDULE: { type: 'string', default: '5s,5m,30m,2h,5h,10h' },
    OSS_CALLBACK_RETRY_FOR: { type: 'string', default: '3d' },
    OSS_CALLBACK_DELIVERY_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 1000, default: 16 },
    OSS_CALLBACK_RETENTION: { type: 'string', default: '7d' },
    OSS_SESSION_TOKEN: { type: 'string' },
    OSS_CALLBACK_RECONCILE_EVERY: { type: 'string' },
    OSS_CALLBACK_RECONCILE_PREFIXES: { type: 'string' },
    OSS_CALLBACK_RECONCILE_WINDOW: { type: 'string', default: '24h' },
    OSS_CALLBACK_RECONCILE_SETTLE: { type: 'string', default: '2m' }
  }
} as const

interface RawEnv {
  HOST: string
  PORT: number
  OSS_CALLBACK_PATH: string
  OSS_CALLBACK_PUBLIC_PATH?: string
  OSS_CALLBACK_KEY_ORIGINS: string
  OSS_CALLBACK_BUCKETS?: string
  OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS: number
  OSS_CALLBACK_DEADLINE_MS: number
  OSS_CALLBACK_BODY_LIMIT_BYTES: number
  OSS_CALLBACK_CAPTURE_DIR?: string
  OSS_CALLBACK_CAPTURE_MAX: number
  LOG_LEVEL: string
  OSS_CALLBACK_FORWARD_URL?: string
  OSS_CALLBACK_FORWARD_SECRET?: string
  OSS_CALLBACK_FORWARD_TIMEOUT_MS: number
  OSS_CALLBACK_FORWARD_MAX_SOCKETS: number
  OSS_CALLBACK_TICKET_TOKEN?: string
  OSS_CALLBACK_TICKET_PATH: string
  OSS_ACCESS_KEY_ID?: string
  OSS_ACCESS_KEY_SECRET?: string
  OSS_BUCKET?: string
  OSS_ENDPOINT?: string
  OSS_REGION?: string
  OSS_CALLBACK_PUBLIC_URL?: string
  OSS_CALLBACK_UPLOAD_PREFIX: string
  OSS_CALLBACK_TICKET_EXPIRY_SECONDS: number
  OSS_CALLBACK_TICKET_GRACE_SECONDS: number
  OSS_CALLBACK_TICKET_MAX_SIZE_BYTES: number
  OSS_CALLBACK_TICKET_CONTENT_TYPES?: string
  OSS_CALLBACK_TICKET_SIGNATURE_VERSION: PostSignatureVersion
  OSS_CALLBACK_ALLOW_WITHOUT_TICKET: 'true' | 'false'
  OSS_CALLBACK_REDIS_URL?: string
  OSS_CALLBACK_DATABASE_URL?: string
  OSS_CALLBACK_ON_UPSTREAM_FAILURE: 'refuse' | 'accept'
  OSS_CALLBACK_RETRY_SCHEDULE: string
  OSS_CALLBACK_RETRY_FOR: string
  OSS_CALLBACK_DELIVERY_CONCURRENCY: number
  OSS_CALLBACK_RETENTION: string
  OSS_SESSION_TOKEN?: string
  OSS_CALLBACK_RECONCILE_EVERY?: string
  OSS_CALLBACK_RECONCILE_PREFIXES?: string
  OSS_CALLBACK_RECONCILE_WINDOW: string
  OSS_CALLBACK_RECONCILE_SETTLE: string
}

/** Variables tickets cannot do without. */
const TICKET_REQUIRED = ['OSS_ACCESS_KEY_ID', 'OSS_ACCESS_KEY_SECRET', 'OSS_BUCKET', 'OSS_ENDPOINT', 'OSS_CALLBACK_PUBLIC_URL'] as const

/** Which of `names` are unset. */
function missingOf (raw: RawEnv, names: ReadonlyArray<keyof RawEnv>): string[] {
  return names.filter((name) => raw[name] === undefined)
}

function ticketConfig (raw: RawEnv): TicketConfig | undefined {
  // Tickets are on exactly when the endpoint is, and the endpoint needs a token.
  if (raw.OSS_CALLBACK_TICKET_TOKEN === undefined) return undefined
  const missing = missingOf(raw, TICKET_REQUIRED)
  if (raw.OSS_CALLBACK_TICKET_SIGNATURE_VERSION === 'v4' && raw.OSS_REGION === undefined) missing.push('OSS_REGION')
  if (missing.length > 0) throw invalidOption(`OSS_CALLBACK_TICKET_TOKEN is set, so tickets are on and need ${missing.join(', ')}`)
  const types = raw.OSS_CALLBACK_TICKET_CONTENT_TYPES?.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const config: TicketConfig = {
    token: raw.OSS_CALLBACK_TICKET_TOKEN,
    path: raw.OSS_CALLBACK_TICKET_PATH,
    accessKeyId: raw.OSS_ACCESS_KEY_ID as string,
    accessKeySecret: raw.OSS_ACCESS_KEY_SECRET as string,
    bucket: raw.OSS_BUCKET as string,
    endpoint: raw.OSS_ENDPOINT as string,
    region: raw.OSS_REGION,
    callbackUrl: raw.OSS_CALLBACK_PUBLIC_URL as string,
    uploadPrefix: raw.OSS_CALLBACK_UPLOAD_PREFIX,
    expirySeconds: raw.OSS_CALLBACK_TICKET_EXPIRY_SECONDS,
    callbackGraceSeconds: raw.OSS_CALLBACK_TICKET_GRACE_SECONDS,
    maxSizeBytes: raw.OSS_CALLBACK_TICKET_MAX_SIZE_BYTES,
    contentTypes: types === undefined || types.length === 0 ? undefined : types,
    signatureVersion: raw.OSS_CALLBACK_TICKET_SIGNATURE_VERSION,
    allowCallbacksWithoutTicket: raw.OSS_CALLBACK_ALLOW_WITHOUT_TICKET === 'true',
    redisUrl: raw.OSS_CALLBACK_REDIS_URL
  }
  try {
    // Builds (and drops) an issuer now, so that a bad endpoint, prefix or type fails at start.
    createUploadTickets(config)
  } catch (err) {
    const message = (err as Error).message.replace(/^Invalid option: /, '')
    const option = /^(\w+)/.exec(message)?.[1] ?? ''
    throw invalidOption(`${TICKET_OPTION_VARIABLES[option] ?? 'upload tickets'}: ${message}`)
  }
  return config
}

const TICKET_OPTION_VARIABLES: Record<string, string> = {
  endpoint: 'OSS_ENDPOINT',
  uploadPrefix: 'OSS_CALLBACK_UPLOAD_PREFIX',
  contentTypes: 'OSS_CALLBACK_TICKET_CONTENT_TYPES',
  callbackUrl: 'OSS_CALLBACK_PUBLIC_URL',
  bucket: 'OSS_BUCKET',
  region: 'OSS_REGION'
}

// What each variable must be, in words, for the one-line start-up error.
const RULES: Record<string, string> = {
  HOST: 'a host name or address',
  PORT: 'a whole number from 0 to 65535',
  OSS_CALLBACK_PATH: 'a path starting with / with no query, fragment or spaces',
  OSS_CALLBACK_PUBLIC_PATH: 'a path starting with / with no query, fragment or spaces',
  OSS_CALLBACK_KEY_ORIGINS: 'a comma-separated list of origins such as https://gosspublic.alicdn.com',
  OSS_CALLBACK_BUCKETS: 'a comma-separated list of bucket names (3 to 63 characters of a-z, 0-9 and -)',
  OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS: 'a whole number of milliseconds from 1 to 30000',
  OSS_CALLBACK_DEADLINE_MS: 'a whole number of milliseconds from 1 to 60000',
  OSS_CALLBACK_BODY_LIMIT_BYTES: 'a whole number of bytes from 1 to 67108864',
  OSS_CALLBACK_CAPTURE_DIR: 'a directory path',
  OSS_CALLBACK_CAPTURE_MAX: 'a whole number from 1 to 10000',
  LOG_LEVEL: `one of ${LOG_LEVELS.join(', ')}`,
  OSS_CALLBACK_FORWARD_URL: 'an http: or https: URL',
  OSS_CALLBACK_FORWARD_SECRET: 'whsec_ followed by the base64 of 24 to 64 random bytes',
  OSS_CALLBACK_FORWARD_TIMEOUT_MS: 'a whole number of milliseconds from 1 to 60000',
  OSS_CALLBACK_FORWARD_MAX_SOCKETS: 'a whole number from 1 to 10000',
  OSS_CALLBACK_TICKET_TOKEN: 'at least 16 characters without white space',
  OSS_CALLBACK_TICKET_PATH: 'a path starting with / with no query, fragment or spaces',
  OSS_BUCKET: 'a bucket name: 3 to 63 characters of a-z, 0-9 and -',
  OSS_REGION: 'a region id such as cn-hangzhou',
  OSS_CALLBACK_PUBLIC_URL: 'an http(s) URL',
  OSS_CALLBACK_TICKET_EXPIRY_SECONDS: 'a whole number of seconds from 1 to 604800',
  OSS_CALLBACK_TICKET_GRACE_SECONDS: 'a whole number of seconds from 0 to 604800',
  OSS_CALLBACK_TICKET_MAX_SIZE_BYTES: 'a whole number of bytes from 1 to 5368709120',
  OSS_CALLBACK_TICKET_SIGNATURE_VERSION: 'v4 or v1',
  OSS_CALLBACK_ALLOW_WITHOUT_TICKET: 'true or false',
  OSS_CALLBACK_REDIS_URL: 'a redis:// or rediss:// URL',
  OSS_CALLBACK_DATABASE_URL: 'sqlite:<path>, postgres://… or none',
  OSS_CALLBACK_ON_UPSTREAM_FAILURE: 'refuse or accept',
  OSS_CALLBACK_RETRY_SCHEDULE: 'durations separated by commas, such as 5s,5m,30m',
  OSS_CALLBACK_RETRY_FOR: 'a duration such as 3d',
  OSS_CALLBACK_DELIVERY_CONCURRENCY: 'a whole number from 1 to 1000',
  OSS_CALLBACK_RETENTION: 'a duration such as 7d',
  OSS_SESSION_TOKEN: 'an STS security token',
  OSS_CALLBACK_RECONCILE_EVERY: 'a duration such as 10m',
  OSS_CALLBACK_RECONCILE_PREFIXES: 'a comma-separated list of key prefixes',
  OSS_CALLBACK_RECONCILE_WINDOW: 'a duration such as 24h',
  OSS_CALLBACK_RECONCILE_SETTLE: 'a duration such as 2m'
}

// Never echoed in an error: a log line must not carry a credential.
const SECRET_VARIABLES = new Set(['OSS_CALLBACK_FORWARD_SECRET', 'OSS_CALLBACK_TICKET_TOKEN', 'OSS_ACCESS_KEY_SECRET', 'OSS_CALLBACK_REDIS_URL', 'OSS_CALLBACK_DATABASE_URL', 'OSS_SESSION_TOKEN'])

function badValue (name: string, value: string | undefined): Error {
  const got = SECRET_VARIABLES.has(name) ? `a value of ${value?.length ?? 0} characters` : JSON.stringify(value)
  return invalidOption(`${name} must be ${RULES[name] ?? 'valid'}, got ${got}`)
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
  for (const name of ['PORT', 'OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS', 'OSS_CALLBACK_DEADLINE_MS', 'OSS_CALLBACK_BODY_LIMIT_BYTES',
    'OSS_CALLBACK_FORWARD_TIMEOUT_MS', 'OSS_CALLBACK_FORWARD_MAX_SOCKETS', 'OSS_CALLBACK_CAPTURE_MAX',
    'OSS_CALLBACK_TICKET_EXPIRY_SECONDS', 'OSS_CALLBACK_TICKET_GRACE_SECONDS', 'OSS_CALLBACK_TICKET_MAX_SIZE_BYTES',
    'OSS_CALLBACK_DELIVERY_CONCURRENCY']) {
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
  checkForwardSettings(raw)
  const buckets = bucketList(raw.OSS_CALLBACK_BUCKETS)
  const tickets = ticketConfig(raw)
  // Every ticket's upload would be refused: a half-done setup, said at start rather than per callback.
  if (buckets !== undefined && tickets !== undefined && !buckets.includes(tickets.bucket)) {
    throw invalidOption(`OSS_CALLBACK_BUCKETS does not name OSS_BUCKET (${tickets.bucket}), where tickets upload to`)
  }
  const delivery = deliverySettings(raw)
  const reconcile = reconcileConfig(raw, delivery)
  return {
    host: raw.HOST,
    port: raw.PORT,
    path: raw.OSS_CALLBACK_PATH,
    publicPath: raw.OSS_CALLBACK_PUBLIC_PATH,
    keyOrigins,
    buckets,
    keyFetchTimeoutMs: raw.OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS,
    deadlineMs: raw.OSS_CALLBACK_DEADLINE_MS,
    bodyLimitBytes: raw.OSS_CALLBACK_BODY_LIMIT_BYTES,
    ...(raw.OSS_CALLBACK_CAPTURE_DIR === undefined ? {} : { captureDir: raw.OSS_CALLBACK_CAPTURE_DIR, captureMax: raw.OSS_CALLBACK_CAPTURE_MAX }),
    logLevel: raw.LOG_LEVEL,
    forwardUrl: raw.OSS_CALLBACK_FORWARD_URL,
    forwardSecret: raw.OSS_CALLBACK_FORWARD_SECRET,
    forwardTimeoutMs: raw.OSS_CALLBACK_FORWARD_TIMEOUT_MS,
    forwardMaxSockets: raw.OSS_CALLBACK_FORWARD_MAX_SOCKETS,
    tickets,
    ...delivery,
    ...(reconcile === undefined ? {} : { reconcile })
  }
}

/** Variables reconciliation cannot do without (besides `OSS_ENDPOINT` or `OSS_REGION`): those tickets read. */
const RECONCILE_REQUIRED = ['OSS_CALLBACK_RECONCILE_PREFIXES', 'OSS_BUCKET', 'OSS_ACCESS_KEY_ID', 'OSS_ACCESS_KEY_SECRET'] as const

function reconcileConfig (raw: RawEnv, delivery: ReturnType<typeof deliverySettings>): ReconcileConfig | undefined {
  if (raw.OSS_CALLBACK_RECONCILE_EVERY === undefined) return undefined
  const everyMs = parseDuration(raw.OSS_CALLBACK_RECONCILE_EVERY, 'OSS_CALLBACK_RECONCILE_EVERY')
  const windowMs = parseDuration(raw.OSS_CALLBACK_RECONCILE_WINDOW, 'OSS_CALLBACK_RECONCILE_WINDOW')
  const settleMs = parseDuration(raw.OSS_CALLBACK_RECONCILE_SETTLE, 'OSS_CALLBACK_RECONCILE_SETTLE')
  // Unconfirmed objects are recorded in the log and delivered from it: without one there is nowhere to put them.
  if (delivery.databaseUrl === undefined) {
    throw invalidOption('OSS_CALLBACK_RECONCILE_EVERY is set, so reconciliation is on and needs the durable event log: OSS_CALLBACK_FORWARD_URL set and OSS_CALLBACK_DATABASE_URL not none')
  }
  const missing = missingOf(raw, RECONCILE_REQUIRED)
  if (raw.OSS_ENDPOINT === undefined && raw.OSS_REGION === undefined) missing.push('OSS_ENDPOINT or OSS_REGION')
  if (missing.length > 0) throw invalidOption(`OSS_CALLBACK_RECONCILE_EVERY is set, so reconciliation is on and needs ${missing.join(', ')}`)
  const prefixes = (raw.OSS_CALLBACK_RECONCILE_PREFIXES as string).split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (prefixes.length === 0) throw badValue('OSS_CALLBACK_RECONCILE_PREFIXES', raw.OSS_CALLBACK_RECONCILE_PREFIXES)
  if (settleMs >= windowMs) {
    throw invalidOption(`OSS_CALLBACK_RECONCILE_SETTLE (${raw.OSS_CALLBACK_RECONCILE_SETTLE}) must be shorter than OSS_CALLBACK_RECONCILE_WINDOW (${raw.OSS_CALLBACK_RECONCILE_WINDOW})`)
  }
  // The log has forgotten callbacks older than its retention: their objects would all look unconfirmed.
  if (delivery.retentionMs !== undefined && windowMs > delivery.retentionMs) {
    throw invalidOption(`OSS_CALLBACK_RECONCILE_WINDOW (${raw.OSS_CALLBACK_RECONCILE_WINDOW}) must not be longer than OSS_CALLBACK_RETENTION (${raw.OSS_CALLBACK_RETENTION})`)
  }
  return {
    everyMs,
    windowMs,
    settleMs,
    prefixes,
    bucket: raw.OSS_BUCKET as string,
    ...(raw.OSS_ENDPOINT === undefined ? {} : { endpoint: raw.OSS_ENDPOINT }),
    ...(raw.OSS_REGION === undefined ? {} : { region: raw.OSS_REGION }),
    credentials: {
      accessKeyId: raw.OSS_ACCESS_KEY_ID as string,
      accessKeySecret: raw.OSS_ACCESS_KEY_SECRET as string,
      ...(raw.OSS_SESSION_TOKEN === undefined ? {} : { sessionToken: raw.OSS_SESSION_TOKEN })
    }
  }
}

/** The event log and delivery settings (only forward mode records events). */
function deliverySettings (raw: RawEnv): Pick<ServerConfig, 'databaseUrl' | 'onUpstreamFailure' | 'retryScheduleMs' | 'retryForMs' | 'deliveryConcurrency' | 'retentionMs'> {
  const given = raw.OSS_CALLBACK_DATABASE_URL
  // Without forward mode it is unused (the container sets it by default), not refused.
  const databaseUrl = raw.OSS_CALLBACK_FORWARD_URL === undefined || given === 'none' ? undefined : given ?? DEFAULT_DATABASE_URL
  return {
    databaseUrl,
    onUpstreamFailure: raw.OSS_CALLBACK_ON_UPSTREAM_FAILURE,
    retryScheduleMs: parseDurationList(raw.OSS_CALLBACK_RETRY_SCHEDULE, 'OSS_CALLBACK_RETRY_SCHEDULE'),
    retryForMs: parseDuration(raw.OSS_CALLBACK_RETRY_FOR, 'OSS_CALLBACK_RETRY_FOR'),
    deliveryConcurrency: raw.OSS_CALLBACK_DELIVERY_CONCURRENCY,
    retentionMs: parseDuration(raw.OSS_CALLBACK_RETENTION, 'OSS_CALLBACK_RETENTION')
  }
}

function bucketList (text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined
  const buckets = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (buckets.length === 0 || !buckets.every((b) => BUCKET_NAME.test(b))) throw badValue('OSS_CALLBACK_BUCKETS', text)
  return buckets
}

function checkForwardSettings (raw: RawEnv): void {
  const url = raw.OSS_CALLBACK_FORWARD_URL
  const secret = raw.OSS_CALLBACK_FORWARD_SECRET
  if (url === undefined) {
    // A secret with nowhere to go is a half-done setup, not something to ignore.
    if (secret !== undefined) throw invalidOption('OSS_CALLBACK_FORWARD_SECRET is set but OSS_CALLBACK_FORWARD_URL is not')
    return
  }
  if (secret === undefined) throw invalidOption('OSS_CALLBACK_FORWARD_URL is set but OSS_CALLBACK_FORWARD_SECRET is not')
  checkForwardUrl(url, 'OSS_CALLBACK_FORWARD_URL')
  checkForwardSecret(secret, 'OSS_CALLBACK_FORWARD_SECRET')
  if (raw.OSS_CALLBACK_FORWARD_TIMEOUT_MS >= raw.OSS_CALLBACK_DEADLINE_MS) {
    throw invalidOption(`OSS_CALLBACK_FORWARD_TIMEOUT_MS (${raw.OSS_CALLBACK_FORWARD_TIMEOUT_MS}) must be less than OSS_CALLBACK_DEADLINE_MS (${raw.OSS_CALLBACK_DEADLINE_MS})`)
  }
}
