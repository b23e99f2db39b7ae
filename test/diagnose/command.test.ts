import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatCapture } from '../../src/diagnose/capture.js'
import { runDiagnoseCommand } from '../../src/diagnose/command.js'
import { OSS_DOC_CALLBACK } from '../../src/receiver/self-test-callback.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair, type SignedCallback } from '../helpers/keys.js'

const pair = testKeyPair(512)
let keyServer: KeyServer
let dir: string
beforeAll(async () => {
  keyServer = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem } })
  dir = mkdtempSync(join(tmpdir(), 'oss-cb-diagnose-'))
})
afterAll(async () => {
  await keyServer.close()
  rmSync(dir, { recursive: true, force: true })
})

let files = 0
/** Writes `cb` as a capture file, with `extra` headers after OSS's own. */
function capture (cb: SignedCallback, extra: string[] = []): string {
  const rawHeaders = ['Host', '127.0.0.1', 'Content-Length', String(cb.body.length), ...Object.entries(cb.headers).flat(), ...extra]
  const path = join(dir, `c${files++}.http`)
  writeFileSync(path, formatCapture({ method: 'POST', url: cb.url, httpVersion: '1.0', rawHeaders, body: cb.body }))
  return path
}

function sign (url: string, signedUrl = url, body?: string | Buffer): SignedCallback {
  return signedCallback({ url, signedUrl, body, keyUrl: keyServer.url('/k.pem'), privateKey: pair.privateKey })
}

async function run (argv: string[], env: Record<string, string> = {}, stdin?: Buffer): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await runDiagnoseCommand(argv, {
    env: { OSS_CALLBACK_KEY_ORIGINS: keyServer.origin, ...env },
    stdout: { write: (s: string) => { out += s; return true } },
    stderr: { write: (s: string) => { err += s; return true } },
    stdin: stdin === undefined ? undefined : Readable.from([stdin])
  })
  return { code, out, err }
}

describe('oss-callback diagnose', () => {
  it('exit 0 when the capture verifies as received, printing every step', async () => {
    const body = Buffer.from('bucket=b&object=o&x%3Anote=a\r\nb\xff', 'latin1')
    const { code, out } = await run([capture(sign('/oss/callback?id=1', undefined, body))])
    expect(code).toBe(0)
    expect(out).toContain('request target\n  POST /oss/callback?id=1 HTTP/1.0\n  path /oss/callback, query id=1')
    expect(out).toContain('  duplicates: none')
    expect(out).toContain(`  decoded: ${keyServer.url('/k.pem')}`)
    expect(out).toContain(`  rule: allowed, origin ${keyServer.origin} is among the allowed key origins (OSS_CALLBACK_KEY_ORIGINS)`)
    expect(out).toContain(`key: fetched from ${keyServer.url('/k.pem')} (RSA 512 bits)`)
    // Every byte shows: the LF after the path, the CR in the body, a byte over 0x7f.
    expect(out).toContain('  /oss/callback?id=1\\n\n  bucket=b&object=o&x%3Anote=a\\r\\n\n  b\\xff\n')
    expect(out).toContain('verify: VERIFIES as received')
    expect(out).toMatch(/variants \(\d+, each changing one thing\)\n( {2}no {6} {2}\S+: .*\n)+result: the callback verifies as received\n$/)
  })

  it('OSS\'s own documented callback verifies with the pinned key (no fetch); with a newline added to its body, exit 2', async () => {
    const fetchesBefore = keyServer.total()
    const real = { url: OSS_DOC_CALLBACK.url, headers: { ...OSS_DOC_CALLBACK.headers }, body: Buffer.from(OSS_DOC_CALLBACK.body) }
    const asSent = await run([capture(real)], { OSS_CALLBACK_KEY_ORIGINS: '' })
    expect(asSent.code).toBe(0)
    expect(asSent.out).toContain('key: pinned for http://gosspublic.alicdn.com/callback_pub_key_v1.pem (RSA 512 bits): no fetch')
    const altered = await run([capture({ ...real, body: Buffer.from(`${OSS_DOC_CALLBACK.body}\n`) })], { OSS_CALLBACK_KEY_ORIGINS: '' })
    expect(altered.code).toBe(2)
    expect(altered.out).toContain('  VERIFIES  trailing-newline-removed: body without its trailing newline')
    expect(keyServer.total()).toBe(fetchesBefore)
  })

  it('exit 2 when only a variant verifies, with the hint; the environment\'s public path makes it exit 0', async () => {
    const file = capture(sign('/oss/callback', '/api/oss/callback'), ['X-Original-URI', '/api/oss/callback'])
    const { code, out } = await run([file])
    expect(code).toBe(2)
    expect(out).toContain('verify: does not verify (OSS_CB_ERR_SIGNATURE_MISMATCH)')
    expect(out).toContain('  VERIFIES  x-original-uri: target /api/oss/callback from x-original-uri')
    expect(out).toContain('hint: OSS signed /api/oss/callback; the request arrived as /oss/callback: a proxy strips /api (x-original-uri holds the original). Set OSS_CALLBACK_PUBLIC_PATH=/api/oss/callback (publicPath)')
    expect(out).toContain('result: only the variant x-original-uri verifies')
    expect((await run([file], { OSS_CALLBACK_PUBLIC_PATH: '/api/oss/callback' })).code).toBe(0)
    expect((await run([file, '--public-path', '/api/oss/callback'], { OSS_CALLBACK_PUBLIC_PATH: '/wrong' })).code).toBe(0)
  })

  it('--public-path that is not needed: exit 2, and the hint says to unset it', async () => {
    const { code, out } = await run([capture(sign('/cb')), '--public-path', '/api/cb'])
    expect(code).toBe(2)
    expect(out).toMatch(/hint: OSS signed the path as it arrived, \/cb, not OSS_CALLBACK_PUBLIC_PATH=\/api\/cb/)
  })

  it('exit 3 when nothing verifies, with the general hint', async () => {
    const { code, out } = await run([capture(sign('/cb', '/somewhere/else'))])
    expect(code).toBe(3)
    expect(out).toMatch(/hint: No single change explains the mismatch\. If a proxy rewrites the path, set OSS_CALLBACK_PUBLIC_PATH/)
    expect(out).toContain('result: nothing verifies')
    expect(out).not.toContain('VERIFIES')
  })

  it('exit 3 for a refused key URL, naming the rule, the origins and the setting', async () => {
    const { code, out } = await run([capture(sign('/cb'))], { OSS_CALLBACK_KEY_ORIGINS: '' })
    expect(code).toBe(3)
    expect(out).toContain('  rule: refused, key URL origin is not allowed; allowed origins: https://gosspublic.alicdn.com, http://gosspublic.alicdn.com')
    expect(out).toMatch(/hint: The key URL names http:\/\/127\.0\.0\.1:\d+, which is neither OSS's key host nor a simulator's: the callback is likely forged/)
  })

  it('--key-origins overrides the environment', async () => {
    expect((await run([capture(sign('/cb')), '--key-origins', `https://gosspublic.alicdn.com,${keyServer.origin}`], { OSS_CALLBACK_KEY_ORIGINS: 'https://gosspublic.alicdn.com' })).code).toBe(0)
  })

  it('lists duplicated headers, and a repeated Authorization is refused (exit 3)', async () => {
    const cb = sign('/cb')
    const { code, out } = await run([capture(cb, ['Authorization', cb.headers.authorization as string])])
    expect(code).toBe(3)
    expect(out).toContain('  duplicates: authorization (2 times)')
    expect(out).toContain('refused: OSS_CB_ERR_DUPLICATE_HEADER')
  })

  it('a dropped Authorization: exit 3 with the hint', async () => {
    const cb = sign('/cb')
    const headers: Record<string, string> = { ...cb.headers }
    delete headers.authorization
    const { code, out } = await run([capture({ ...cb, headers })])
    expect(code).toBe(3)
    expect(out).toContain('hint: The Authorization header is missing while x-oss-pub-key-url is present')
  })

  it('reads the capture from stdin with -', async () => {
    const cb = sign('/cb')
    const bytes = formatCapture({ method: 'POST', url: cb.url, rawHeaders: Object.entries(cb.headers).flat(), body: cb.body })
    expect((await run(['-'], {}, bytes)).code).toBe(0)
  })

  it('exit 1 for usage errors', async () => {
    const good = capture(sign('/cb'))
    const notHttp = join(dir, 'not-http.txt')
    writeFileSync(notHttp, 'hello\r\n\r\n')
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [[], {}, /name one capture file/],
      [[good, good], {}, /name one capture file/],
      [[join(dir, 'missing.http')], {}, /cannot read .*ENOENT/],
      [[good, '--public-path', 'api/cb'], {}, /--public-path must start with \//],
      [[good], { OSS_CALLBACK_PATH: '/cb?x' }, /--path must start with \//],
      [[good, '--key-origins', 'https://gosspublic.alicdn.com/path'], {}, /keyOrigins: .* is not a bare http\(s\) origin/],
      [[good, '--bogus'], {}, /Unknown option '--bogus'/],
      [[notHttp], {}, /the first line is not a request line/]
    ]
    for (const [argv, env, message] of cases) {
      const { code, err } = await run(argv, env)
      expect({ argv, code }).toEqual({ argv, code: 1 })
      expect(err).toMatch(message)
    }
    const help = await run(['--help'])
    expect(help.code).toBe(0)
    expect(help.out).toMatch(/^Usage: oss-callback diagnose <file \| ->/)
  })
})
