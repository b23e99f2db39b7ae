import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/server/config.js'

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
      forwardTimeoutMs: 3500,
      forwardMaxSockets: 64
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
      forwardTimeoutMs: 3500,
      forwardMaxSockets: 64
    })
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
