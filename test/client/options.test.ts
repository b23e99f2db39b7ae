import { describe, expect, it } from 'vitest'
import { parseByteSize, parseUploadArgs } from '../../src/client/args.js'
import { encodeUploadCallback } from '../../src/client/callback.js'
import { runUploadCommand } from '../../src/client/command.js'
import { effectivePartSize, resolveUploadOptions, type UploadOptions } from '../../src/client/options.js'
import { defaultCallbackBody } from '../../src/protocol/callback-param.js'
import { parseCallbackBody } from '../../src/protocol/body.js'

const env = { OSS_ACCESS_KEY_ID: 'ak', OSS_ACCESS_KEY_SECRET: 'sk' }
const required = ['f.txt', '--endpoint', 'http://127.0.0.1:8090', '--bucket', 'demo', '--callback-url', 'http://127.0.0.1:3000/cb']

function errorOf (fn: () => unknown): { code?: string, message: string, reason?: string } {
  try {
    fn()
  } catch (err) {
    return err as { code?: string, message: string, reason?: string }
  }
  throw new Error('expected a throw')
}

describe('parseUploadArgs', () => {
  it('maps every flag to a typed option and the credentials from the environment', () => {
    const parsed = parseUploadArgs([...required, '--key', 'dir/a b+c.txt', '--callback-body', 'o=${object}&u=${x:uid}',
      '--callback-body-type', 'form', '--callback-host', 'cb.example.com', '--callback-sni', '--var', 'uid=42', '--var', 'x:note=a=b',
      '--part-size', '512KiB', '--multipart-threshold', '1M', '--parallel', '2', '--post', '--region', 'oss-cn-shanghai',
      '--signature-version', 'v1', '--content-type', 'text/plain', '--timeout', '5000'], { ...env, OSS_SESSION_TOKEN: 'tok' })
    expect(parsed).toEqual({
      help: false,
      options: {
        file: 'f.txt',
        endpoint: 'http://127.0.0.1:8090',
        bucket: 'demo',
        key: 'dir/a b+c.txt',
        accessKeyId: 'ak',
        accessKeySecret: 'sk',
        securityToken: 'tok',
        region: 'oss-cn-shanghai',
        signatureVersion: 1,
        callback: { url: 'http://127.0.0.1:3000/cb', body: 'o=${object}&u=${x:uid}', bodyType: 'form', host: 'cb.example.com', sni: true, vars: { 'x:uid': '42', 'x:note': 'a=b' } },
        post: true,
        partSizeBytes: 512 * 1024,
        multipartThresholdBytes: 1024 * 1024,
        parallelParts: 2,
        contentType: 'text/plain',
        requestTimeoutMs: 5000
      }
    })
  })

  it.each([
    [['--endpoint', 'http://x', '--bucket', 'b', '--callback-url', 'u'], env, 'give the file to upload'],
    [['a', 'b', '--endpoint', 'http://x', '--bucket', 'b', '--callback-url', 'u'], env, 'give exactly one file to upload'],
    [['f', '--bucket', 'b', '--callback-url', 'u'], env, '--endpoint is required'],
    [['f', '--endpoint', 'http://x', '--callback-url', 'u'], env, '--bucket is required'],
    [['f', '--endpoint', 'http://x', '--bucket', 'b'], env, '--callback-url is required'],
    [[...required, '--bukcet', 'x'], env, "Unknown option '--bukcet'"],
    [[...required, '--callback-body-type', 'xml'], env, '--callback-body-type: must be json or form'],
    [[...required, '--var', 'novalue'], env, '--var: "novalue" is not name=value'],
    [[...required, '--var', 'a=1', '--var', 'x:a=2'], env, '--var: "x:a" given twice'],
    [[...required, '--part-size', '8 parsecs'], env, '--part-size: "8 parsecs" is not a size in bytes (e.g. 1048576 or 8MiB)'],
    [[...required, '--parallel', 'two'], env, '--parallel: "two" is not a whole number'],
    [[...required, '--signature-version', '2'], env, '--signature-version: must be 1 or 4'],
    [required, { OSS_ACCESS_KEY_ID: 'ak' }, 'set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the environment']
  ])('refuses %j with a clear message', (argv, environment, message) => {
    const err = errorOf(() => parseUploadArgs(argv, environment))
    expect(err.code).toBe('OSS_CB_ERR_INVALID_OPTION')
    expect(err.message).toBe(`Invalid option: ${message}`)
  })

  it('reads sizes with binary suffixes', () => {
    expect(parseByteSize('--x', '102400')).toBe(102400)
    expect(parseByteSize('--x', '100K')).toBe(102400)
    expect(parseByteSize('--x', '8MiB')).toBe(8 * 1024 * 1024)
    expect(parseByteSize('--x', '1gib')).toBe(1024 ** 3)
  })
})

function base (extra: Partial<UploadOptions> = {}): UploadOptions {
  return { file: '/tmp/f.txt', endpoint: 'http://127.0.0.1:8090', bucket: 'demo', region: 'cn-hangzhou', accessKeyId: 'ak', accessKeySecret: 'sk', callback: { url: 'http://127.0.0.1:3000/cb' }, ...extra }
}

describe('resolveUploadOptions', () => {
  it('applies the documented defaults', () => {
    const o = resolveUploadOptions(base())
    expect(o).toMatchObject({
      key: 'f.txt', region: 'cn-hangzhou', signatureVersion: 4, post: false, multipartThresholdBytes: 100 * 1024 * 1024,
      partSizeBytes: 8 * 1024 * 1024, parallelParts: 4, requestTimeoutMs: 60_000,
      callback: { url: 'http://127.0.0.1:3000/cb', bodyType: 'json', sni: false, vars: {}, body: defaultCallbackBody('json') }
    })
    expect(o.endpoint.href).toBe('http://127.0.0.1:8090/')
  })

  it('takes the region in either form, or from an OSS endpoint', () => {
    expect(resolveUploadOptions(base({ region: 'oss-cn-beijing' })).region).toBe('cn-beijing')
    expect(resolveUploadOptions(base({ region: undefined, endpoint: 'https://oss-cn-shenzhen.aliyuncs.com' })).region).toBe('cn-shenzhen')
    expect(resolveUploadOptions(base({ region: undefined, endpoint: 'https://oss-ap-southeast-1-internal.aliyuncs.com' })).region).toBe('ap-southeast-1')
  })

  it.each([
    [{ region: undefined }, 'region: required for an endpoint that does not name one (give e.g. cn-hangzhou)'],
    [{ region: 'CN Hangzhou' }, 'region: "CN Hangzhou" is not a region id such as cn-hangzhou or oss-cn-hangzhou'],
    [{ endpoint: 'oss-cn-hangzhou.aliyuncs.com' }, 'endpoint: not a URL; give the scheme too, e.g. https://oss-cn-hangzhou.aliyuncs.com'],
    [{ endpoint: 'ftp://127.0.0.1' }, 'endpoint: must be an http:// or https:// URL'],
    [{ endpoint: 'http://127.0.0.1:8090/bucket' }, 'endpoint: must be a scheme, host and optional port only'],
    [{ bucket: 'Demo_Bucket' }, 'bucket: 3 to 63 characters, lower-case letters, digits and "-", not starting or ending with "-"'],
    [{ key: '/abs' }, 'key: must not start with "/" or "\\"'],
    [{ key: 'k'.repeat(1024) }, 'key: must be 1 to 1023 bytes of UTF-8'],
    [{ partSizeBytes: 1000 }, 'partSizeBytes must be a whole number from 102400 to 5368709120, got 1000'],
    [{ parallelParts: 0 }, 'parallelParts must be a whole number from 1 to 64, got 0'],
    [{ accessKeySecret: '' }, 'accessKeySecret (OSS_ACCESS_KEY_SECRET): required'],
    [{ contentType: 'not a type' }, 'contentType: must be a media type such as image/png']
  ])('refuses %j', (extra, message) => {
    const err = errorOf(() => resolveUploadOptions(base(extra as Partial<UploadOptions>)))
    expect(err.message).toBe(`Invalid option: ${message}`)
  })

  it('raises the part size so that no upload needs over 10 000 parts', () => {
    expect(effectivePartSize(10 * 1024 ** 3, 100 * 1024)).toBe(Math.ceil(10 * 1024 ** 3 / 10_000))
    expect(effectivePartSize(1024 ** 2, 100 * 1024)).toBe(100 * 1024)
  })
})

describe('the callback parameter', () => {
  it('defaults to a body the receiver parses into typed system fields and variables', () => {
    const form = defaultCallbackBody('form', ['uid'])
    expect(form).toMatch(/&x:uid=\$\{x:uid\}$/)
    // What OSS would send for it, filled by hand:
    const filled = form.replace(/\$\{([^}]+)\}/g, (_m, n: string) => (n === 'size' ? '11' : n === 'x:uid' ? '42' : n === 'object' ? 'a%2Fb.txt' : ''))
    const parsed = parseCallbackBody(Buffer.from(filled), 'form')
    expect(parsed.system.size).toBe(11)
    expect(parsed.system.object).toBe('a/b.txt')
    expect(parsed.vars).toEqual({ 'x:uid': '42' })
    const json = defaultCallbackBody('json', ['x:uid'])
    expect(json).not.toContain('imageInfo')
    expect(json.endsWith(',"x:uid":${x:uid}}')).toBe(true)
  })

  it('is encoded once, with variable names prefixed, and checked before anything is sent', () => {
    const o = resolveUploadOptions(base({ callback: { url: 'http://127.0.0.1:3000/cb', body: 'u=${x:uid}', bodyType: 'form', vars: { uid: '7' } } }))
    const cb = encodeUploadCallback(o.callback)
    expect(JSON.parse(Buffer.from(cb.callback, 'base64').toString())).toEqual({
      callbackUrl: 'http://127.0.0.1:3000/cb', callbackBody: 'u=${x:uid}', callbackBodyType: 'application/x-www-form-urlencoded'
    })
    expect(JSON.parse(Buffer.from(cb.callbackVar ?? '', 'base64').toString())).toEqual({ 'x:uid': '7' })
    expect(cb.vars).toEqual({ 'x:uid': '7' })

    const withHost = encodeUploadCallback(resolveUploadOptions(base({ callback: { url: 'https://cb.example.com/oss', host: 'api.example.com', sni: true } })).callback)
    expect(JSON.parse(Buffer.from(withHost.callback, 'base64').toString())).toMatchObject({ callbackHost: 'api.example.com', callbackSNI: true, callbackBodyType: 'application/json' })
    expect(withHost.callbackVar).toBeUndefined()
  })

  it.each([
    [{ body: 'u=${x:missing}', vars: {} }, 'OSS_CB_ERR_INVALID_OPTION', 'Invalid option: callback body: ${x:missing} has no value; give it with --var missing=<value>'],
    [{ body: 'u=${x:Upper}', vars: { Upper: '1' } }, 'OSS_CB_ERR_INVALID_CALLBACK_PARAM', 'A callback variable name must be lower case, start with x: and use a-z 0-9 _ - . only.'],
    [{ body: 'u=${nosuch}' }, 'OSS_CB_ERR_INVALID_CALLBACK_PARAM', 'The callbackBody uses a variable that is neither a system variable nor x:.'],
    [{ body: 'u=${object' }, 'OSS_CB_ERR_INVALID_CALLBACK_PARAM', 'The callbackBody has an unclosed ${ placeholder.'],
    [{ url: 'http://a/1;http://a/2;http://a/3;http://a/4;http://a/5;http://a/6' }, 'OSS_CB_ERR_INVALID_CALLBACK_PARAM', 'The callbackUrl has more than 5 URLs.'],
    [{ body: 'x'.repeat(6000) }, 'OSS_CB_ERR_INVALID_CALLBACK_PARAM', 'The callback configuration is longer than 5 KB.'],
    [{ vars: { big: 'v'.repeat(4000) } }, 'OSS_CB_ERR_INVALID_CALLBACK_PARAM', 'The callback-var configuration is longer than 5 KB.']
  ])('refuses %j', (cb, code, reasonOrMessage) => {
    const o = resolveUploadOptions(base({ callback: { url: 'http://127.0.0.1:3000/cb', ...cb } }))
    const err = errorOf(() => encodeUploadCallback(o.callback))
    expect(err.code).toBe(code)
    expect(code === 'OSS_CB_ERR_INVALID_OPTION' ? err.message : err.reason).toBe(reasonOrMessage)
  })
})

describe('runUploadCommand usage errors', () => {
  function io () {
    let out = ''
    let err = ''
    return {
      io: { env, stdout: { write: (c: string) => { out += c; return true } }, stderr: { write: (c: string) => { err += c; return true } } },
      out: () => out,
      err: () => err
    }
  }

  it('exits 1 with one clear line and nothing on stdout, before any request', async () => {
    const t = io()
    expect(await runUploadCommand([...required, '--region', 'cn-hangzhou', '--var', 'Bad=1'], t.io)).toBe(1)
    expect(t.out()).toBe('')
    expect(t.err()).toBe('oss-callback upload: OSS_CB_ERR_INVALID_CALLBACK_PARAM: The callback parameter is invalid: A callback variable name must be lower case, start with x: and use a-z 0-9 _ - . only.\n')
    const t2 = io()
    expect(await runUploadCommand(['f.txt'], t2.io)).toBe(1)
    expect(t2.err()).toBe('oss-callback upload: OSS_CB_ERR_INVALID_OPTION: Invalid option: --endpoint is required; see oss-callback upload --help\n')
  })

  it('prints help on stdout and exits 0', async () => {
    const t = io()
    expect(await runUploadCommand(['--help'], t.io)).toBe(0)
    expect(t.out()).toContain('Usage: oss-callback upload <file>')
  })
})
