import { describe, expect, it } from 'vitest'
import {
  CALLBACK_PARAM_MESSAGES, decodeCallbackParam, DEFAULT_CALLBACK_BODY, defaultCallbackBody, encodeCallbackParam, isPublicIpv4, normalizeCallbackVarName,
  type CallbackParam
} from '../../src/protocol/callback-param.js'

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64')
const fromB64 = (value: string): unknown => JSON.parse(Buffer.from(value, 'base64').toString('utf8'))

function reasonOf (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    const e = err as { code?: string, statusCode?: number, reason?: string }
    expect(e.code).toBe('OSS_CB_ERR_INVALID_CALLBACK_PARAM')
    expect(e.statusCode).toBe(400)
    return e.reason
  }
  throw new Error('expected a throw')
}

const base: CallbackParam = {
  callbackUrl: 'http://127.0.0.1:8080/oss/callback',
  callbackBody: 'bucket=${bucket}&object=${object}&size=${size}&v=${x:v}'
}

describe('encodeCallbackParam', () => {
  it('encodes the JSON object and the variables, prefixing x:', () => {
    const enc = encodeCallbackParam({ ...base, callbackBodyType: 'application/json', callbackHost: 'api.example.com' }, { v: '1', 'x:w': '中文 +/' })
    expect(fromB64(enc.callback)).toEqual({
      callbackUrl: base.callbackUrl,
      callbackHost: 'api.example.com',
      callbackBody: base.callbackBody,
      callbackBodyType: 'application/json'
    })
    expect(fromB64(enc.callbackVar as string)).toEqual({ 'x:v': '1', 'x:w': '中文 +/' })
  })

  it('defaults the body type to urlencoded and omits callbackVar without variables', () => {
    const enc = encodeCallbackParam(base)
    expect(enc.callbackVar).toBeUndefined()
    expect(fromB64(enc.callback)).toMatchObject({ callbackBodyType: 'application/x-www-form-urlencoded' })
  })

  it('accepts 5 URLs and refuses 6', () => {
    const five = Array.from({ length: 5 }, (_, i) => `http://127.0.0.1:${8000 + i}/cb`).join(';')
    expect(() => encodeCallbackParam({ ...base, callbackUrl: five })).not.toThrow()
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackUrl: `${five};http://127.0.0.1/x` }))).toBe(CALLBACK_PARAM_MESSAGES.tooManyUrls)
  })

  it.each([
    ['http://example.com:test/cb', CALLBACK_PARAM_MESSAGES.badPort],
    ['http://example.com:70000/cb', CALLBACK_PARAM_MESSAGES.badPort],
    ['http://example.com:0/cb', CALLBACK_PARAM_MESSAGES.badPort],
    ['ftp://example.com/cb', CALLBACK_PARAM_MESSAGES.badUrl],
    ['http://exa mple.com/cb', CALLBACK_PARAM_MESSAGES.badUrl],
    ['http://example.com/回调', CALLBACK_PARAM_MESSAGES.badUrl],
    ['http://u:p@example.com/cb', CALLBACK_PARAM_MESSAGES.badUrl],
    ['', CALLBACK_PARAM_MESSAGES.emptyUrl]
  ])('refuses callbackUrl %j', (url, reason) => {
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackUrl: url }))).toBe(reason)
  })

  it('refuses private and loopback hosts only when strict', () => {
    expect(() => encodeCallbackParam(base)).not.toThrow()
    for (const url of ['http://127.0.0.1/cb', 'http://10.1.2.3/cb', 'http://192.168.0.1/cb', 'http://172.20.0.1/cb', 'http://localhost:80/cb', 'http://[::1]/cb']) {
      expect(reasonOf(() => encodeCallbackParam({ ...base, callbackUrl: url }, {}, { strict: true }))).toBe(CALLBACK_PARAM_MESSAGES.privateIp)
    }
    expect(() => encodeCallbackParam({ ...base, callbackUrl: 'http://8.8.8.8/cb' }, {}, { strict: true })).not.toThrow()
    expect(() => encodeCallbackParam({ ...base, callbackUrl: 'https://api.example.com/cb' }, {}, { strict: true })).not.toThrow()
  })

  it('refuses an empty body, an unknown body type and unknown or malformed placeholders', () => {
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBody: '' }))).toBe(CALLBACK_PARAM_MESSAGES.emptyBody)
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBodyType: 'text/plain' as 'application/json' }))).toBe(CALLBACK_PARAM_MESSAGES.badBodyType)
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBody: 'a=${filename}' }))).toBe(CALLBACK_PARAM_MESSAGES.unknownVariable)
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBody: 'a=${x:Upper}' }))).toBe(CALLBACK_PARAM_MESSAGES.unknownVariable)
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBody: 'a=${object' }))).toMatch(/unclosed/)
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBody: 'a=${}' }))).toMatch(/malformed/)
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBody: 'a=${ob ject}' }))).toMatch(/malformed/)
    expect(() => encodeCallbackParam({ ...base, callbackBody: 'price=$5&a=${imageInfo.width}&b=${x:undeclared}' })).not.toThrow()
  })

  it('refuses variable names that are not lower case and values that are not strings', () => {
    expect(normalizeCallbackVarName('my_var')).toBe('x:my_var')
    expect(normalizeCallbackVarName('x:my-var.1')).toBe('x:my-var.1')
    expect(reasonOf(() => encodeCallbackParam(base, { MyVar: 'v' }))).toBe(CALLBACK_PARAM_MESSAGES.badVarName)
    expect(reasonOf(() => encodeCallbackParam(base, { 'x:': 'v' }))).toBe(CALLBACK_PARAM_MESSAGES.badVarName)
    expect(reasonOf(() => encodeCallbackParam(base, { a: 1 as unknown as string }))).toBe(CALLBACK_PARAM_MESSAGES.badVarValue)
  })

  it('refuses encoded values over 5 KB', () => {
    expect(reasonOf(() => encodeCallbackParam({ ...base, callbackBody: `a=${'x'.repeat(4000)}` }))).toBe(CALLBACK_PARAM_MESSAGES.tooLong)
    expect(reasonOf(() => encodeCallbackParam(base, { a: 'y'.repeat(4000) }))).toBe(CALLBACK_PARAM_MESSAGES.varTooLong)
    expect(() => encodeCallbackParam(base, { a: 'y'.repeat(3700) })).not.toThrow()
  })
})

describe('decodeCallbackParam', () => {
  it('round-trips what encodeCallbackParam produces', () => {
    const enc = encodeCallbackParam({ ...base, callbackUrl: 'http://127.0.0.1:1/a;http://127.0.0.1:2/b?x=1', callbackBodyType: 'application/json', callbackHost: 'h.example', callbackSNI: true }, { v: 'val' })
    const dec = decodeCallbackParam(enc.callback, enc.callbackVar)
    expect(dec?.urls.map(String)).toEqual(['http://127.0.0.1:1/a', 'http://127.0.0.1:2/b?x=1'])
    expect(dec).toMatchObject({ host: 'h.example', template: base.callbackBody, bodyType: 'json', contentType: 'application/json', sni: true })
    expect({ ...dec?.vars }).toEqual({ 'x:v': 'val' })
  })

  it('reads a scheme-less URL as http, as in OSS own examples', () => {
    const dec = decodeCallbackParam(b64({ callbackUrl: '121.101.166.30/test.php', callbackBody: 'a=${object}' }))
    expect(dec?.urls[0]?.href).toBe('http://121.101.166.30/test.php')
    expect(dec?.bodyType).toBe('form')
  })

  it('makes no callback when callbackUrl is absent or empty', () => {
    expect(decodeCallbackParam(b64({ callbackUrl: '', callbackBody: 'a' }))).toBeUndefined()
    expect(decodeCallbackParam(b64({ callbackBody: 'a' }))).toBeUndefined()
  })

  it.each([
    ['not base64 at all!', CALLBACK_PARAM_MESSAGES.notJson],
    [b64('not json'), CALLBACK_PARAM_MESSAGES.notJson],
    [b64('[1,2]'), CALLBACK_PARAM_MESSAGES.notJson],
    [b64({ callbackUrl: 'http://a.example/1;http://a.example/2;http://a.example/3;http://a.example/4;http://a.example/5;http://a.example/6', callbackBody: 'a' }), CALLBACK_PARAM_MESSAGES.tooManyUrls],
    [b64({ callbackUrl: 'www.callback-example.com:test', callbackBody: 'a' }), CALLBACK_PARAM_MESSAGES.badPort],
    [b64({ callbackUrl: 'http://a.example/', callbackBody: '' }), CALLBACK_PARAM_MESSAGES.emptyBody],
    [b64({ callbackUrl: 'http://a.example/', callbackBody: 'a', callbackBodyType: 'text/xml' }), CALLBACK_PARAM_MESSAGES.badBodyType],
    [b64({ callbackUrl: 'http://a.example/', callbackBody: 'a=${object' }), 'The callbackBody has an unclosed ${ placeholder.'],
    ['A'.repeat(5121), CALLBACK_PARAM_MESSAGES.tooLong]
  ])('refuses %j with 400', (value, reason) => {
    expect(reasonOf(() => decodeCallbackParam(value))).toBe(reason)
  })

  it('gives OSS exact message for a configuration that is not JSON', () => {
    expect(CALLBACK_PARAM_MESSAGES.notJson).toBe('The callback configuration is not json format.')
  })

  it('refuses 127.0.0.1 only when strict, as OSS refuses private addresses', () => {
    const value = b64({ callbackUrl: '127.0.0.1:8088/test.php', callbackBody: 'a=${object}' })
    expect(decodeCallbackParam(value)?.urls[0]?.port).toBe('8088')
    expect(reasonOf(() => decodeCallbackParam(value, undefined, { strict: true }))).toBe(CALLBACK_PARAM_MESSAGES.privateIp)
  })

  it('keeps unknown placeholders (built as empty) and ignores variables without the x: prefix', () => {
    const dec = decodeCallbackParam(b64({ callbackUrl: 'http://a.example/', callbackBody: 'a=${filename}' }), b64({ 'x:ok': 'v', bad: 'w', 'x:Upper': 'z', 'x:n': 5 }))
    expect({ ...dec?.vars }).toEqual({ 'x:ok': 'v', 'x:n': '5' })
    expect(reasonOf(() => decodeCallbackParam(b64({ callbackUrl: 'http://a.example/', callbackBody: 'a' }), 'bm90IGpzb24='))).toBe(CALLBACK_PARAM_MESSAGES.varNotJson)
  })
})

describe('isPublicIpv4', () => {
  it.each([
    ['8.8.8.8', true], ['121.101.166.30', true], ['172.32.0.1', true], ['100.128.0.1', true],
    ['127.0.0.1', false], ['10.0.0.1', false], ['172.16.0.1', false], ['172.31.255.255', false], ['192.168.1.1', false],
    ['169.254.169.254', false], ['100.64.0.1', false], ['0.0.0.0', false], ['224.0.0.1', false], ['255.255.255.255', false],
    ['999.1.1.1', false], ['example.com', false]
  ])('%s -> %s', (ip, expected) => {
    expect(isPublicIpv4(ip)).toBe(expected)
  })
})

describe('DEFAULT_CALLBACK_BODY', () => {
  it('passes the encoder checks for both types', () => {
    expect(() => encodeCallbackParam({ ...base, callbackBody: DEFAULT_CALLBACK_BODY.form })).not.toThrow()
    expect(() => encodeCallbackParam({ ...base, callbackBody: DEFAULT_CALLBACK_BODY.json, callbackBodyType: 'application/json' })).not.toThrow()
  })
})

describe('defaultCallbackBody', () => {
  it('adds every variable, x: prefixed, to the default template', () => {
    expect(defaultCallbackBody('form', ['uid', 'x:tag'])).toBe(`${DEFAULT_CALLBACK_BODY.form}&x:uid=\${x:uid}&x:tag=\${x:tag}`)
    expect(defaultCallbackBody('json', ['uid'])).toBe(`${DEFAULT_CALLBACK_BODY.json.slice(0, -1)},"x:uid":\${x:uid}}`)
    expect(defaultCallbackBody('json')).toBe(DEFAULT_CALLBACK_BODY.json)
  })
})
