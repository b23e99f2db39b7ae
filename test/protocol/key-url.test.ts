import { describe, expect, it } from 'vitest'
import { checkKeyUrl, compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS } from '../../src/protocol/key-url.js'

const production = compileKeyUrlPolicy(DEFAULT_KEY_ORIGINS)
const refused = expect.objectContaining({ code: 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED', statusCode: 403 })

describe('checkKeyUrl', () => {
  it.each([
    'https://gosspublic.alicdn.com/callback_pub_key_v1.pem',
    'http://gosspublic.alicdn.com/callback_pub_key_v1.pem',
    'https://gosspublic.alicdn.com/callback_pub_key_v2.pem'
  ])('allows %s', (url) => {
    expect(checkKeyUrl(url, production).href).toBe(url)
  })

  it.each([
    'https://gosspublic.alicdn.com.evil.example/k.pem',
    'https://gosspublic.alicdn.com@evil.example/k.pem',
    'https://evil.example/?https://gosspublic.alicdn.com/',
    'https://user:pw@gosspublic.alicdn.com/k.pem',
    'https://GOSSPUBLIC.alicdn.com/k.pem',
    'https://gosspublic.alicdn.com./k.pem',
    'https://gosspublic.alicdn.com:443/k.pem',
    'https://gosspublic.alicdn.com:8443/k.pem',
    'https://gosspublic.alicdn.com/k.pem?x=1',
    'https://gosspublic.alicdn.com/k.pem#frag',
    'https://gosspublic.alicdn.com/dir/k.pem',
    'https://gosspublic.alicdn.com/../k.pem',
    'https://gosspublic.alicdn.com/%2e%2e/k.pem',
    'https://gosspublic.alicdn.com\\k.pem',
    'https://gosspublic.alicdn.com/k.txt',
    'https://gosspublic.alicdn.com/',
    'ftp://gosspublic.alicdn.com/k.pem',
    'file:///etc/k.pem',
    'data:text/plain,k.pem',
    'gosspublic.alicdn.com/k.pem',
    ''
  ])('refuses %s', (url) => {
    expect(() => checkKeyUrl(url, production)).toThrow(refused)
  })

  it('allows a configured local origin with its port, and nothing else on that host', () => {
    const local = compileKeyUrlPolicy(['http://127.0.0.1:8090'])
    expect(checkKeyUrl('http://127.0.0.1:8090/sim.pem', local).href).toBe('http://127.0.0.1:8090/sim.pem')
    expect(() => checkKeyUrl('http://127.0.0.1:8091/sim.pem', local)).toThrow(refused)
    expect(() => checkKeyUrl('https://127.0.0.1:8090/sim.pem', local)).toThrow(refused)
    expect(() => checkKeyUrl('https://gosspublic.alicdn.com/callback_pub_key_v1.pem', local)).toThrow(refused)
  })
})

describe('compileKeyUrlPolicy', () => {
  it.each([
    ['a path', 'https://example.com/keys'],
    ['userinfo', 'https://u@example.com'],
    ['another scheme', 'ftp://example.com'],
    ['upper case', 'https://Example.com'],
    ['a default port', 'https://example.com:443'],
    ['not a URL', 'example.com']
  ])('refuses an origin with %s, naming it', (_name, origin) => {
    expect(() => compileKeyUrlPolicy([origin])).toThrow(expect.objectContaining({
      code: 'OSS_CB_ERR_INVALID_OPTION',
      message: expect.stringContaining(JSON.stringify(origin)) as unknown
    }))
  })

  it('refuses an empty list', () => {
    expect(() => compileKeyUrlPolicy([])).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_INVALID_OPTION' }))
  })

  it('accepts a trailing slash', () => {
    expect([...compileKeyUrlPolicy(['http://127.0.0.1:9/']).origins]).toEqual(['http://127.0.0.1:9'])
  })
})
