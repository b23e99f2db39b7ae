import { describe, expect, it } from 'vitest'
import { bodyTypeOf, parseCallbackBody } from '../../src/protocol/body.js'

const unparseable = expect.objectContaining({ code: 'OSS_CB_ERR_BODY_UNPARSEABLE', statusCode: 400 })

describe('bodyTypeOf', () => {
  it.each([
    ['application/x-www-form-urlencoded', 'form'],
    ['Application/JSON; charset=utf-8', 'json'],
    [' application/json ', 'json'],
    ['text/plain', undefined],
    ['application/jsonx', undefined],
    [undefined, undefined]
  ])('%s -> %s', (header, type) => {
    expect(bodyTypeOf(header)).toBe(type)
  })
})

describe('parseCallbackBody (urlencoded)', () => {
  const raw = Buffer.from('bucket=my-bucket&object=dir%2F%E4%B8%AD+a%20b%2Bc.jpg&etag=D41D8CD98F00B204E9800998ECF8427E' +
    '&size=114020&mimeType=image%2Fjpeg&imageInfo.height=&imageInfo.width=&imageInfo.format=' +
    '&crc64=11051210869376104954&contentMd5=1B2M2Y8AsgTpgAmY7PhCfg%3D%3D&vpcId=&clientIp=1.2.3.4' +
    '&reqId=5F1E&operation=PutObject&x:my_var=hello+world&x:empty=')

  it('types every system variable and keeps x: variables apart', () => {
    const parsed = parseCallbackBody(raw, 'form')
    expect(parsed.system).toEqual({
      bucket: 'my-bucket',
      object: 'dir/中 a b+c.jpg',
      etag: 'D41D8CD98F00B204E9800998ECF8427E',
      size: 114020,
      mimeType: 'image/jpeg',
      imageInfo: { height: undefined, width: undefined, format: undefined },
      crc64: '11051210869376104954',
      contentMd5: '1B2M2Y8AsgTpgAmY7PhCfg==',
      vpcId: undefined,
      clientIp: '1.2.3.4',
      reqId: '5F1E',
      operation: 'PutObject'
    })
    expect({ ...parsed.vars }).toEqual({ 'x:my_var': 'hello world', 'x:empty': '' })
    expect(parsed.type).toBe('form')
    expect(parsed.fields.size).toBe('114020')
  })

  it('reads image fields when present', () => {
    const parsed = parseCallbackBody(Buffer.from('imageInfo.height=480&imageInfo.width=640&imageInfo.format=png'), 'form')
    expect(parsed.system.imageInfo).toEqual({ height: 480, width: 640, format: 'png' })
  })

  it('keeps the first of repeated names and treats __proto__ as a plain key', () => {
    const parsed = parseCallbackBody(Buffer.from('a=1&a=2&__proto__=x&constructor=y'), 'form')
    expect(parsed.fields.a).toBe('1')
    expect(parsed.fields.__proto__).toBe('x')
    expect(Object.getPrototypeOf(parsed.fields)).toBeNull()
    expect(({} as Record<string, unknown>).x).toBeUndefined()
  })

  it.each([
    ['a broken escape', 'a=%E4%B8'],
    ['a lone %', 'a=%'],
    ['invalid UTF-8 bytes', Buffer.from([0x61, 0x3d, 0xff])]
  ])('refuses %s', (_name, body) => {
    expect(() => parseCallbackBody(Buffer.from(body), 'form')).toThrow(unparseable)
  })
})

describe('parseCallbackBody (JSON)', () => {
  it('types fields from a JSON template and reads nested image info', () => {
    const parsed = parseCallbackBody(Buffer.from(JSON.stringify({
      bucket: 'b', object: 'a/b.jpg', size: 114020, imageInfo: { height: 10, width: 20, format: 'jpg' }, 'x:id': 7
    })), 'json')
    expect(parsed.system).toMatchObject({ bucket: 'b', object: 'a/b.jpg', size: 114020, imageInfo: { height: 10, width: 20, format: 'jpg' } })
    expect({ ...parsed.vars }).toEqual({ 'x:id': '7' })
  })

  it('does not pollute prototypes with __proto__ or constructor keys', () => {
    const parsed = parseCallbackBody(Buffer.from('{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}},"bucket":"b"}'), 'json')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(parsed.system.bucket).toBe('b')
    expect(Object.getPrototypeOf(parsed.fields)).toBeNull()
  })

  it.each([
    ['malformed JSON', '{"size":}'],
    ['a form body sent as JSON', 'bucket=b&size=1'],
    ['an array', '[1,2]'],
    ['a bare string', '"x"'],
    ['null', 'null'],
    ['empty', '']
  ])('refuses %s', (_name, body) => {
    expect(() => parseCallbackBody(Buffer.from(body), 'json')).toThrow(unparseable)
  })

  it('parses deeply nested JSON without crashing, and refuses it when unbalanced', () => {
    const deep = '{"a":' + '['.repeat(200_000) + ']'.repeat(200_000) + ',"bucket":"b"}'
    expect(parseCallbackBody(Buffer.from(deep), 'json').system.bucket).toBe('b')
    expect(() => parseCallbackBody(Buffer.from('{"a":' + '['.repeat(200_000) + '}'), 'json')).toThrow(unparseable)
  })

  it('leaves a size that is not a whole number undefined', () => {
    expect(parseCallbackBody(Buffer.from('{"size":"12a"}'), 'json').system.size).toBeUndefined()
    expect(parseCallbackBody(Buffer.from('{"size":-1}'), 'json').system.size).toBeUndefined()
    expect(parseCallbackBody(Buffer.from('{"size":"42"}'), 'json').system.size).toBe(42)
  })
})
