import { describe, expect, it } from 'vitest'
import { buildStringToSign, percentDecodePath, splitRequestTarget } from '../../src/protocol/string-to-sign.js'
import { docCallback } from '../helpers/fixtures.js'

describe('buildStringToSign', () => {
  it('reproduces the string OSS signed for the documented callback', () => {
    const target = splitRequestTarget(docCallback.path + docCallback.query)
    expect(buildStringToSign(target, Buffer.from(docCallback.body)).toString()).toBe(docCallback.stringToSign)
  })

  it('adds no "?" when the callback has no query', () => {
    expect(buildStringToSign(splitRequestTarget('/cb'), Buffer.from('a=1')).toString()).toBe('/cb\na=1')
  })

  it('treats an empty query as no query', () => {
    expect(buildStringToSign(splitRequestTarget('/cb?'), Buffer.from('a=1')).toString()).toBe('/cb\na=1')
  })

  it('decodes the path once and keeps the query raw', () => {
    const target = splitRequestTarget('/a%20b/%25%32%30?x=%20y&z=1')
    expect(buildStringToSign(target, Buffer.from('')).toString()).toBe('/a b/%20?x=%20y&z=1\n')
  })

  it('keeps the body bytes exactly, even when they are not UTF-8', () => {
    const body = Buffer.from([0xff, 0x00, 0x0a, 0x80])
    const out = buildStringToSign(splitRequestTarget('/p'), body)
    expect(out.subarray(out.length - 4)).toEqual(body)
  })

  it('refuses a target that is not origin-form', () => {
    expect(() => splitRequestTarget('http://x/p')).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_BAD_REQUEST_TARGET' }))
    expect(() => splitRequestTarget('')).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_BAD_REQUEST_TARGET' }))
  })
})

describe('percentDecodePath', () => {
  it('decodes UTF-8 sequences to bytes', () => {
    expect(percentDecodePath('/%E4%B8%AD').toString()).toBe('/中')
  })

  it('leaves + alone and keeps malformed escapes as they are', () => {
    expect(percentDecodePath('/a+b%2').toString()).toBe('/a+b%2')
    expect(percentDecodePath('/%zz%4').toString()).toBe('/%zz%4')
  })
})
