import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseCallbackBody } from '../../src/protocol/body.js'
import { isOssCallbackError } from '../../src/errors.js'

// Form decoding skips decodeURIComponent for components without '%': these tests hold the
// result to the WHATWG form decoder (URLSearchParams) and to the documented refusals.
const text = fc.string({ unit: 'grapheme', maxLength: 12 })
const encode = (s: string, plusForSpace: boolean): string => {
  const e = encodeURIComponent(s)
  return plusForSpace ? e.replaceAll('%20', '+') : e
}

describe('urlencoded callback bodies', () => {
  it('decode names and values as URLSearchParams does, the first of repeated names winning', () => {
    fc.assert(fc.property(fc.array(fc.tuple(text, text, fc.boolean()), { maxLength: 8 }), (pairs) => {
      const body = pairs.map(([k, v, plus]) => `${encode(k, plus)}=${encode(v, plus)}`).join('&')
      const fields = parseCallbackBody(Buffer.from(body), 'form').fields
      const oracle = new URLSearchParams(body)
      for (const [k] of pairs) {
        if (k === '') continue
        expect(fields[k]).toBe(oracle.get(k))
      }
    }))
  })

  it('keeps literal text without escapes as it is, + as a space', () => {
    const { fields } = parseCallbackBody(Buffer.from('bucket=b&object=photos/a+b.jpg&x:tag=ok~!*()\'&size=42'), 'form')
    expect({ ...fields }).toEqual({ bucket: 'b', object: 'photos/a b.jpg', 'x:tag': "ok~!*()'", size: '42' })
  })

  it('collects x: variables in order of first appearance, first value winning, as strings', () => {
    const parsed = parseCallbackBody(Buffer.from('x%3Ab=2&bucket=b&x:a=1&x:b=3&y:c=4&x:=5&x%3Aempty=&&x:flag'), 'form')
    expect(Object.entries(parsed.vars)).toEqual([['x:b', '2'], ['x:a', '1'], ['x:', '5'], ['x:empty', ''], ['x:flag', '']])
    expect(Object.getPrototypeOf(parsed.vars)).toBeNull()
    expect(Object.keys(parsed.fields)).toEqual(['x:b', 'bucket', 'x:a', 'y:c', 'x:', 'x:empty', 'x:flag'])
  })

  it('reads x: variables of JSON bodies from their top-level fields', () => {
    const parsed = parseCallbackBody(Buffer.from('{"x:n":7,"x:s":"v","x:t":true,"x:o":{"a":1},"bucket":"b"}'), 'json')
    expect({ ...parsed.vars }).toEqual({ 'x:n': '7', 'x:s': 'v', 'x:t': 'true' })
  })

  it.each([
    ['a malformed escape in a repeated name\'s value', 'bucket=b&bucket=%zz'],
    ['a malformed escape in a value', 'bucket=%E0%A4%A'],
    ['a malformed escape in a name', '%zz=1'],
    ['an escape that is not UTF-8', 'object=%FF'],
    ['raw bytes that are not UTF-8', Buffer.from([0x61, 0x3d, 0xff])]
  ])('refuses %s as BODY_UNPARSEABLE', (_name, body) => {
    let caught: unknown
    try {
      parseCallbackBody(Buffer.isBuffer(body) ? body : Buffer.from(body), 'form')
    } catch (err) {
      caught = err
    }
    expect(isOssCallbackError(caught) && caught.code).toBe('OSS_CB_ERR_BODY_UNPARSEABLE')
  })
})
