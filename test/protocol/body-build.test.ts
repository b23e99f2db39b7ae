import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { buildCallbackBody, parseCallbackBody, parseCallbackTemplate, SYSTEM_VARIABLES, type CallbackBodyValues } from '../../src/protocol/body.js'

const system: CallbackBodyValues['system'] = {
  bucket: 'examplebucket',
  object: 'a/b c+d/中文.jpg',
  etag: 'D41D8CD98F00B204E9800998ECF8427E',
  size: 114020,
  mimeType: 'image/jpeg',
  'imageInfo.height': 480,
  'imageInfo.width': 640,
  'imageInfo.format': 'jpg',
  crc64: '11051210869376104954',
  contentMd5: '1B2M2Y8AsgTpgAmY7PhCfg==',
  vpcId: '',
  clientIp: '192.0.2.1',
  reqId: '5F1E3A2B4C',
  operation: 'PutObject'
}

describe('buildCallbackBody', () => {
  it('URL-encodes form values and leaves empty ones empty', () => {
    const body = buildCallbackBody('object=${object}&h=${imageInfo.height}&vpc=${vpcId}&v=${x:v}&u=${x:undefined}', { system: { ...system, 'imageInfo.height': undefined }, vars: { 'x:v': 'a b+c' } }, 'form')
    expect(body).toBe('object=a%2Fb%20c%2Bd%2F%E4%B8%AD%E6%96%87.jpg&h=&vpc=&v=a%20b%2Bc&u=')
  })

  it('inserts JSON strings with their quotes and numbers bare', () => {
    const body = buildCallbackBody('{"object":${object},"size":${size},"w":${imageInfo.width},"v":${x:v},"md5":${contentMd5}}', { system: { ...system, contentMd5: '' }, vars: { 'x:v': 'say "hi"' } }, 'json')
    expect(body).toBe('{"object":"a/b c+d/中文.jpg","size":114020,"w":640,"v":"say \\"hi\\"","md5":""}')
  })

  it('expands an undefined x: variable and an empty image field to nothing in JSON (the result may be invalid JSON, as OSS sends it)', () => {
    expect(buildCallbackBody('{"v":${x:none},"h":${imageInfo.height}}', { system: {} }, 'json')).toBe('{"v":,"h":}')
  })

  it('leaves a $ without a brace as text and substitutes textually in a form template sent as JSON', () => {
    expect(buildCallbackBody('price=$5&b=${bucket}', { system }, 'json')).toBe('price=$5&b="examplebucket"')
  })

  it('splits a template into text and placeholders', () => {
    expect(parseCallbackTemplate('a=${bucket}&${x:v}$')).toEqual([{ text: 'a=' }, { variable: 'bucket' }, { text: '&' }, { variable: 'x:v' }, { text: '$' }])
  })
})

// Strings with the characters that break naive encoders: space, +, /, %, &, =, quotes, Chinese, emoji.
const tricky = fc.string({
  unit: fc.oneof(
    fc.constantFrom(' ', '+', '/', '%', '&', '=', '"', '\\', '中', '文', '😀', '?', '#', ':', '\n'),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })
  ),
  maxLength: 40
})

describe('buildCallbackBody then parseCallbackBody', () => {
  const names = Object.keys(SYSTEM_VARIABLES) as Array<keyof typeof SYSTEM_VARIABLES>
  const formTemplate = [...names.map((n) => `${n}=\${${n}}`), 'x:a=${x:a}', 'x:b=${x:b}'].join('&')
  const jsonTemplate = `{${[...names.map((n) => `"${n}":\${${n}}`), '"x:a":${x:a}', '"x:b":${x:b}'].join(',')}}`
  const values = fc.record({
    bucket: tricky, object: tricky, etag: fc.stringMatching(/^[0-9A-F]{32}$/), size: fc.nat({ max: 2 ** 40 }),
    mimeType: tricky, height: fc.nat({ max: 10000 }), width: fc.nat({ max: 10000 }), format: tricky,
    crc64: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), contentMd5: tricky, vpcId: tricky,
    clientIp: tricky, reqId: tricky, operation: fc.constantFrom('PutObject', 'PostObject', 'CompleteMultipartUpload'),
    a: tricky, b: tricky
  })

  for (const type of ['form', 'json'] as const) {
    it(`returns every value for ${type} bodies`, () => {
      fc.assert(fc.property(values, (v) => {
        const input: CallbackBodyValues = {
          system: {
            bucket: v.bucket, object: v.object, etag: v.etag, size: v.size, mimeType: v.mimeType,
            'imageInfo.height': v.height, 'imageInfo.width': v.width, 'imageInfo.format': v.format, crc64: v.crc64,
            contentMd5: v.contentMd5, vpcId: v.vpcId, clientIp: v.clientIp, reqId: v.reqId, operation: v.operation
          },
          vars: { 'x:a': v.a, 'x:b': v.b }
        }
        const body = buildCallbackBody(type === 'form' ? formTemplate : jsonTemplate, input, type)
        const parsed = parseCallbackBody(Buffer.from(body, 'utf8'), type)
        const orUndefined = (s: string): string | undefined => (s === '' ? undefined : s)
        expect(parsed.system).toEqual({
          bucket: orUndefined(v.bucket), object: orUndefined(v.object), etag: v.etag, size: v.size, mimeType: orUndefined(v.mimeType),
          imageInfo: { height: v.height, width: v.width, format: orUndefined(v.format) },
          crc64: v.crc64, contentMd5: orUndefined(v.contentMd5), vpcId: orUndefined(v.vpcId), clientIp: orUndefined(v.clientIp),
          reqId: orUndefined(v.reqId), operation: v.operation
        })
        expect({ ...parsed.vars }).toEqual({ 'x:a': v.a, 'x:b': v.b })
      }), { numRuns: 300 })
    })
  }

  it('parses a body whose spaces came as + (the other encoding OSS may use)', () => {
    const body = buildCallbackBody('object=${object}', { system: { object: 'a b/中' } }, 'form').replaceAll('%20', '+')
    expect(parseCallbackBody(Buffer.from(body), 'form').system.object).toBe('a b/中')
  })
})
