import { describe, expect, it } from 'vitest'
import { parseQuery, parseTarget } from '../../src/sim/addressing.js'

const own = new Set(['localhost', '127.0.0.1'])

describe('parseTarget', () => {
  it.each([
    ['/bucket/dir/key.txt', '127.0.0.1:8090', { bucket: 'bucket', key: 'dir/key.txt', pathStyle: true }],
    ['/bucket%2Fdir%2Fkey.txt', '127.0.0.1:8090', { bucket: 'bucket', key: 'dir/key.txt', pathStyle: true }],
    ['/bucket/%E4%B8%AD%20a+b.txt', 'localhost:8090', { bucket: 'bucket', key: '中 a+b.txt', pathStyle: true }],
    ['/bucket/x', '[::1]:8090', { bucket: 'bucket', key: 'x', pathStyle: true }],
    ['/bucket/x', 'oss-sim:8090', { bucket: 'bucket', key: 'x', pathStyle: true }],
    ['/bucket', '10.0.0.5', { bucket: 'bucket', pathStyle: true }],
    ['/dir%2Fkey.txt', 'bucket.oss-cn-hangzhou.aliyuncs.com', { bucket: 'bucket', key: 'dir/key.txt', pathStyle: false }],
    ['/', 'bucket.oss.example.internal:9000', { bucket: 'bucket', pathStyle: false }],
    ['/', '127.0.0.1:8090', { pathStyle: true }]
  ])('%s with Host %s', (url, host, expected) => {
    const t = parseTarget(url, host, own)
    expect({ bucket: t.bucket, key: t.key, pathStyle: t.pathStyle }).toEqual({ bucket: undefined, key: undefined, ...expected })
  })

  it('refuses a path that is not UTF-8 once decoded', () => {
    expect(() => parseTarget('/bucket/%FF', '127.0.0.1', own)).toThrow('The specified object is not valid.')
  })
})

describe('parseQuery', () => {
  it('decodes once and keeps + (base64 in callback=)', () => {
    expect(parseQuery('uploadId=AB&partNumber=2&callback=eyJ+a%2Bb/c=&uploads')).toEqual([
      ['uploadId', 'AB'], ['partNumber', '2'], ['callback', 'eyJ+a+b/c='], ['uploads', '']
    ])
    expect(() => parseQuery('a=%E4')).toThrow('The request URI is not validly percent-encoded.')
  })
})
