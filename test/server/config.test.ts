import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/server/config.js'

// The forward and delivery settings when none is given.
const GATEWAY_DEFAULTS = {
  forwardTimeoutMs: 3500,
  forwardMaxSockets: 64,
  onUpstreamFailure: 'refuse',
  retryScheduleMs: [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000],
  retryForMs: 3 * 86_400_000,
  deliveryConcurrency: 16,
  retentionMs: 7 * 86_400_000
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toEqual({
      host: '0.0.0.0',
      port: 8080,
      path: '/oss/callback',
      publicPath: undefined,
      keyOrigins: ['https://gosspublic.alicdn.com', 'http://gosspublic.alicdn.com'],
      keyFetchTimeoutMs: 2000,
      deadlineMs: 4500,
      bodyLimitBytes: 65536,
      logLevel: 'info',
      ...GATEWAY_DEFAULTS
    })
  })

  it('reads every variable', () => {
    expect(loadConfig({
      HOST: '127.0.0.1',
      PORT: '9000',
      OSS_CALLBACK_PATH: '/cb',
      OSS_CALLBACK_PUBLIC_PATH: '/api/cb',
      OSS_CALLBACK_KEY_ORIGINS: 'http://127.0.0.1:8090, https://gosspublic.alicdn.com',
      OSS_CALLBACK_BUCKETS: 'mine, mine-too',
      OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS: '1500',
      OSS_CALLBACK_DEADLINE_MS: '4000',
      OSS_CALLBACK_BODY_LIMIT_BYTES: '1024',
      LOG_LEVEL: 'warn'
    })).toEqual({
      host: '127.0.0.1',
      port: 9000,
      path: '/cb',
      publicPath: '/api/cb',
      keyOrigins: ['http://127.0.0.1:8090', 'https://gosspublic.alicdn.com'],
      buckets: ['mine', 'mine-too'],
      keyFetchTimeoutMs: 1500,
      deadlineMs: 4000,
      bodyLimitBytes: 1024,
      logLevel: 'warn',
      ...GATEWAY_DEFAULTS
    })
  })

  it('reads the event log and delivery variables; forward mode records to sqlite:./data by default, none turns it off', () => {
    const forward = { OSS_CALLBACK_FORWARD_URL: 'http://127.0.0.1:3000/hook', OSS_CALLBACK_FORWARD_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}` }
    expect(loadConfig({}).databaseUrl).toBeUndefined()
    expect(loadConfig(forward).databaseUrl).toBe('sqlite:./data/oss-callback.sqlite')
    expect(loadConfig({ ...forward, OSS_CALLBACK_DATABASE_URL: 'none' }).databaseUrl).toBeUndefined()
    expect(loadConfig({
      ...forward,
      OSS_CALLBACK_DATABASE_URL: 'postgres://u:p@db:5432/events',
      OSS_CALLBACK_ON_UPSTREAM_FAILURE: 'accept',
      OSS_CALLBACK_RETRY_SCHEDULE: '1s, 2m',
      OSS_CALLBACK_RETRY_FOR: '12h',
      OSS_CALLBACK_DELIVERY_CONCURRENCY: '4',
      OSS_CALLBACK_RETENTION: '30d'
    })).toMatchObject({
      databaseUrl: 'postgres://u:p@db:5432/events', onUpstreamFailure: 'accept', retryScheduleMs: [1000, 120_000],
      retryForMs: 43_200_000, deliveryConcurrency: 4, retentionMs: 30 * 86_400_000
    })
  })

  it.each([
    ['OSS_CALLBACK_DATABASE_URL', 'mysql://db/x', /^Invalid option: OSS_CALLBACK_DATABASE_URL must be sqlite:<path>, postgres:\/\/… or none, got a value of 12 characters$/],
    ['OSS_CALLBACK_ON_UPSTREAM_FAILURE', 'drop', /^Invalid option: OSS_CALLBACK_ON_UPSTREAM_FAILURE must be refuse or accept, got "drop"$/],
    ['OSS_CALLBACK_RETRY_SCHEDULE', '5s,,1m', /^Invalid option: OSS_CALLBACK_RETRY_SCHEDULE must be durations separated by commas/],
    ['OSS_CALLBACK_RETRY_SCHEDULE', '5x', /^Invalid option: OSS_CALLBACK_RETRY_SCHEDULE must be a whole number followed by s, m, h or d/],
    ['OSS_CALLBACK_RETRY_FOR', '0d', /^Invalid option: OSS_CALLBACK_RETRY_FOR must be greater than zero/],
    ['OSS_CALLBACK_DELIVERY_CONCURRENCY', '0', /OSS_CALLBACK_DELIVERY_CONCURRENCY must be a whole number from 1 to 1000/],
    ['OSS_CALLBACK_DELIVERY_CONCURRENCY', '4.5', /OSS_CALLBACK_DELIVERY_CONCURRENCY/],
    ['OSS_CALLBACK_RETENTION', '7 days', /^Invalid option: OSS_CALLBACK_RETENTION must be a whole number followed by s, m, h or d/]
  ])('refuses %s=%s in one line', (name, value, pattern) => {
    const err = (() => { try { loadConfig({ [name]: value }); return undefined } catch (e) { return e as Error } })()
    expect(err?.message).toMatch(pattern)
    expect(err?.message).not.toContain('\n')
  })

  it.each([
    ['PORT', 'abc', /PORT/],
    ['PORT', '8080abc', /PORT/],
    ['PORT', '70000', /PORT/],
    ['OSS_CALLBACK_PATH', 'no-slash', /OSS_CALLBACK_PATH/],
    ['OSS_CALLBACK_PUBLIC_PATH', '/a?b', /OSS_CALLBACK_PUBLIC_PATH/],
    ['OSS_CALLBACK_KEY_ORIGINS', 'https://evil.example/path', /OSS_CALLBACK_KEY_ORIGINS: "https:\/\/evil.example\/path"/],
    ['OSS_CALLBACK_KEY_ORIGINS', ' , ', /OSS_CALLBACK_KEY_ORIGINS/],
    ['OSS_CALLBACK_BUCKETS', 'Mine', /OSS_CALLBACK_BUCKETS must be a comma-separated list of bucket names/],
    ['OSS_CALLBACK_BUCKETS', 'mine,x', /OSS_CALLBACK_BUCKETS/],
    ['OSS_CALLBACK_BUCKETS', ' , ', /OSS_CALLBACK_BUCKETS/],
    ['OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS', '0', /OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS/],
    ['OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS', '1e3', /OSS_CALLBACK_KEY_FETCH_TIMEOUT_MS/],
    ['OSS_CALLBACK_DEADLINE_MS', '-1', /OSS_CALLBACK_DEADLINE_MS/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL/]
  ])('refuses %s=%s with a message naming it', (name, value, pattern) => {
    expect(() => loadConfig({ [name]: value })).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_INVALID_OPTION', message: expect.stringMatching(pattern) as unknown }))
  })
})

describe('loadConfig: the reconciliation schedule', () => {
  const on = {
    OSS_CALLBACK_FORWARD_URL: 'http://127.0.0.1:3000/hook',
    OSS_CALLBACK_FORWARD_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
    OSS_CALLBACK_DATABASE_URL: 'sqlite:/tmp/never-opened.sqlite',
    OSS_CALLBACK_RECONCILE_EVERY: '10m',
    OSS_CALLBACK_RECONCILE_PREFIXES: 'users/, avatars/',
    OSS_BUCKET: 'photos',
    OSS_REGION: 'oss-cn-hangzhou',
    OSS_ACCESS_KEY_ID: 'id',
    OSS_ACCESS_KEY_SECRET: 'the-access-key-secret'
  }
  const errorOf = (env: Record<string, string>): Error | undefined => { try { loadConfig(env); return undefined } catch (e) { return e as Error } }

  it('is off unless OSS_CALLBACK_RECONCILE_EVERY is set', () => {
    expect(loadConfig({}).reconcile).toBeUndefined()
    expect(loadConfig({ ...on, OSS_CALLBACK_RECONCILE_EVERY: '' }).reconcile).toBeUndefined()
  })

  it('reads every variable, with a 24h window and a 2m settle time by default', () => {
    expect(loadConfig(on).reconcile).toEqual({
      everyMs: 600_000,
      windowMs: 86_400_000,
      settleMs: 120_000,
      prefixes: ['users/', 'avatars/'],
      bucket: 'photos',
      region: 'oss-cn-hangzhou',
      credentials: { accessKeyId: 'id', accessKeySecret: 'the-access-key-secret' }
    })
    expect(loadConfig({
      ...on,
      OSS_CALLBACK_RECONCILE_WINDOW: '3d',
      OSS_CALLBACK_RECONCILE_SETTLE: '30s',
      OSS_ENDPOINT: 'http://127.0.0.1:8090',
      OSS_SESSION_TOKEN: 'sts-token'
    }).reconcile).toMatchObject({
      windowMs: 3 * 86_400_000,
      settleMs: 30_000,
      endpoint: 'http://127.0.0.1:8090',
      region: 'oss-cn-hangzhou',
      credentials: { accessKeyId: 'id', accessKeySecret: 'the-access-key-secret', sessionToken: 'sts-token' }
    })
  })

  it.each([
    ['OSS_CALLBACK_RECONCILE_EVERY', '10 minutes', /^Invalid option: OSS_CALLBACK_RECONCILE_EVERY must be a whole number followed by s, m, h or d/],
    ['OSS_CALLBACK_RECONCILE_EVERY', '0m', /^Invalid option: OSS_CALLBACK_RECONCILE_EVERY must be greater than zero/],
    ['OSS_CALLBACK_RECONCILE_WINDOW', '1w', /^Invalid option: OSS_CALLBACK_RECONCILE_WINDOW must be a whole number followed by s, m, h or d/],
    ['OSS_CALLBACK_RECONCILE_SETTLE', '0s', /^Invalid option: OSS_CALLBACK_RECONCILE_SETTLE must be greater than zero/],
    ['OSS_CALLBACK_RECONCILE_PREFIXES', ' , ', /^Invalid option: OSS_CALLBACK_RECONCILE_PREFIXES must be a comma-separated list of key prefixes, got " , "$/],
    ['OSS_CALLBACK_RECONCILE_WINDOW', '8d', /^Invalid option: OSS_CALLBACK_RECONCILE_WINDOW \(8d\) must not be longer than OSS_CALLBACK_RETENTION \(7d\)$/],
    ['OSS_CALLBACK_RECONCILE_SETTLE', '24h', /^Invalid option: OSS_CALLBACK_RECONCILE_SETTLE \(24h\) must be shorter than OSS_CALLBACK_RECONCILE_WINDOW \(24h\)$/]
  ])('refuses %s=%s in one line', (name, value, pattern) => {
    const err = errorOf({ ...on, [name]: value })
    expect(err).toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION' })
    expect(err?.message).toMatch(pattern)
    expect(err?.message).not.toContain('\n')
  })

  it('allows a window as long as the retention, and a longer one when the retention grows', () => {
    expect(loadConfig({ ...on, OSS_CALLBACK_RECONCILE_WINDOW: '7d' }).reconcile?.windowMs).toBe(7 * 86_400_000)
    expect(loadConfig({ ...on, OSS_CALLBACK_RECONCILE_WINDOW: '8d', OSS_CALLBACK_RETENTION: '8d' }).reconcile?.windowMs).toBe(8 * 86_400_000)
  })

  it.each([
    ['OSS_CALLBACK_RECONCILE_PREFIXES', /needs OSS_CALLBACK_RECONCILE_PREFIXES$/],
    ['OSS_BUCKET', /needs OSS_BUCKET$/],
    ['OSS_ACCESS_KEY_ID', /needs OSS_ACCESS_KEY_ID$/],
    ['OSS_ACCESS_KEY_SECRET', /needs OSS_ACCESS_KEY_SECRET$/],
    ['OSS_REGION', /needs OSS_ENDPOINT or OSS_REGION$/]
  ])('refuses to start without %s, in one line', (name, pattern) => {
    const err = errorOf({ ...on, [name]: '' })
    expect(err?.message).toMatch(/^Invalid option: OSS_CALLBACK_RECONCILE_EVERY is set, so reconciliation is on and needs /)
    expect(err?.message).toMatch(pattern)
    expect(err?.message).not.toContain('\n')
  })

  it('names every missing variable at once, and never echoes the secret', () => {
    const err = errorOf({ ...on, OSS_BUCKET: '', OSS_ACCESS_KEY_ID: '', OSS_REGION: '' })
    expect(err?.message).toBe('Invalid option: OSS_CALLBACK_RECONCILE_EVERY is set, so reconciliation is on and needs OSS_BUCKET, OSS_ACCESS_KEY_ID, OSS_ENDPOINT or OSS_REGION')
    expect(errorOf({ ...on, OSS_CALLBACK_RECONCILE_WINDOW: '8d' })?.message).not.toContain('the-access-key-secret')
  })

  it('refuses to start without the durable event log (no forward mode, or OSS_CALLBACK_DATABASE_URL=none)', () => {
    const message = 'Invalid option: OSS_CALLBACK_RECONCILE_EVERY is set, so reconciliation is on and needs the durable event log: OSS_CALLBACK_FORWARD_URL set and OSS_CALLBACK_DATABASE_URL not none'
    expect(errorOf({ ...on, OSS_CALLBACK_DATABASE_URL: 'none' })?.message).toBe(message)
    expect(errorOf({ ...on, OSS_CALLBACK_FORWARD_URL: '', OSS_CALLBACK_FORWARD_SECRET: '' })?.message).toBe(message)
  })
})
