import { describe, expect, it } from 'vitest'
import type { OssCallbackError } from '../../src/errors.js'
import { createDiagnostics, type RefusedRequest } from '../../src/diagnose/explain.js'
import { GENERAL_HINT } from '../../src/diagnose/hints.js'
import { KeyProvider } from '../../src/keys/provider.js'
import { createCallbackVerifier } from '../../src/receiver/verify.js'
import { signedCallback, testKeyPair, type SignedCallback } from '../helpers/keys.js'

const pair = testKeyPair(512)
const KEY_ORIGIN = 'http://127.0.0.1:9'
const KEY_URL = `${KEY_ORIGIN}/k.pem`
const BODY = 'bucket=b&object=a%2Fb.jpg&size=42'

function keys (): KeyProvider {
  return new KeyProvider({ pinned: new Map([[KEY_URL, pair.publicKey]]), fetch: async () => { throw new Error('no fetch in these tests') } })
}

/** A callback OSS signed for `signedUrl` and `signedBody`, as it arrives after `alter`. */
function arriving (signedUrl: string, signedBody: string, alter: { url?: string, body?: string | Buffer, headers?: Record<string, string> }): SignedCallback {
  const signed = signedCallback({ url: signedUrl, body: signedBody, keyUrl: KEY_URL, privateKey: pair.privateKey })
  return {
    url: alter.url ?? signed.url,
    body: alter.body === undefined ? signed.body : Buffer.from(alter.body),
    headers: { ...signed.headers, ...alter.headers }
  }
}

/** Verifies as the receiver does; on refusal, explains with the same settings. Returns the code and hint. */
async function refuse (cb: SignedCallback, publicPath?: string): Promise<{ code: string, hint: string | undefined }> {
  const shared = keys()
  const verifier = createCallbackVerifier({ keyOrigins: [KEY_ORIGIN], keys: shared, publicPath, batchVerifications: false })
  const diagnostics = createDiagnostics({ keys: shared, policy: verifier.policy, publicPath })
  const request = { method: 'POST', url: cb.url, headers: cb.headers, body: cb.body } satisfies RefusedRequest
  try {
    await verifier.verify(request)
  } catch (err) {
    const error = err as OssCallbackError
    const hint = diagnostics.onRefusal(error, request)
    expect(error.hint).toBe(hint)
    expect(error.message).not.toContain('OSS_CALLBACK_PUBLIC_PATH')
    return { code: error.code, hint }
  }
  throw new Error('the callback verified')
}

describe('variants after a signature mismatch, each naming its cause and fix', () => {
  it('X-Forwarded-Prefix: a proxy strips the prefix it names', async () => {
    const cb = arriving('/api/oss/callback', BODY, { url: '/oss/callback', headers: { 'x-forwarded-prefix': '/api/' } })
    const { code, hint } = await refuse(cb)
    expect(code).toBe('OSS_CB_ERR_SIGNATURE_MISMATCH')
    expect(hint).toBe('OSS signed /api/oss/callback; the request arrived as /oss/callback: a proxy strips /api (X-Forwarded-Prefix says so). Set OSS_CALLBACK_PUBLIC_PATH=/api/oss/callback (publicPath)')
  })

  for (const header of ['x-original-uri', 'x-forwarded-uri', 'x-envoy-original-path']) {
    it(`${header}: the path OSS called, held by the proxy`, async () => {
      const cb = arriving('/api/oss/callback?id=1', BODY, { url: '/oss/callback?id=1', headers: { [header]: '/api/oss/callback?id=1' } })
      expect((await refuse(cb)).hint).toBe(`OSS signed /api/oss/callback; the request arrived as /oss/callback: a proxy strips /api (${header} holds the original). Set OSS_CALLBACK_PUBLIC_PATH=/api/oss/callback (publicPath)`)
    })
  }

  it('an original URI whose query differs: the proxy changes the query', async () => {
    const cb = arriving('/cb?a=1', BODY, { url: '/cb?a=1&b=2', headers: { 'x-original-uri': '/cb?a=1' } })
    expect((await refuse(cb)).hint).toMatch(/^OSS signed the target \/cb\?a=1; the request arrived as \/cb\?a=1&b=2: a proxy changes the query/)
  })

  it('a public path set where nothing rewrites the path: unset it', async () => {
    const cb = arriving('/oss/callback', BODY, {})
    expect((await refuse(cb, '/api/oss/callback')).hint).toBe('OSS signed the path as it arrived, /oss/callback, not OSS_CALLBACK_PUBLIC_PATH=/api/oss/callback: nothing in front rewrites the path. Unset OSS_CALLBACK_PUBLIC_PATH (publicPath)')
  })

  it('an empty "?" that the signer kept', async () => {
    const signer = signedCallback({ url: '/cb', signedUrl: '/cb%3F', body: BODY, keyUrl: KEY_URL, privateKey: pair.privateKey })
    for (const url of ['/cb', '/cb?']) {
      expect((await refuse({ ...signer, url })).hint).toMatch(/^The signature covers \/cb\? with an empty query mark/)
    }
  })

  it('"+" where OSS signed %20: set the public path with %20', async () => {
    const cb = arriving('/oss/my%20callback', BODY, { url: '/oss/my+callback' })
    expect((await refuse(cb)).hint).toMatch(/^OSS signed a space where the path has "\+" \(\/oss\/my%20callback\).*Set OSS_CALLBACK_PUBLIC_PATH=\/oss\/my%20callback/)
  })

  it('%20 where OSS signed "+": set the public path with "+"', async () => {
    const cb = arriving('/oss/my+callback', BODY, { url: '/oss/my%20callback' })
    expect((await refuse(cb)).hint).toMatch(/^OSS signed "\+" where the path has a space \(\/oss\/my\+callback\).*Set OSS_CALLBACK_PUBLIC_PATH=\/oss\/my\+callback/)
  })

  it('a body whose LF became CRLF', async () => {
    const body = '{"bucket":"b",\n"object":"o"}'
    const cb = arriving('/cb', body, { body: body.replace('\n', '\r\n') })
    cb.headers['content-type'] = 'application/json'
    expect((await refuse(cb)).hint).toMatch(/^OSS signed the body with LF line ends; it arrived with CRLF/)
  })

  it('a body whose trailing newline was trimmed', async () => {
    const cb = arriving('/cb', `${BODY}\n`, { body: BODY })
    expect((await refuse(cb)).hint).toMatch(/^OSS signed the body with a trailing newline that did not arrive/)
  })

  it('a body that gained a trailing newline', async () => {
    const cb = arriving('/cb', BODY, { body: `${BODY}\r\n` })
    expect((await refuse(cb)).hint).toMatch(/^OSS signed the body without the trailing newline it arrived with/)
  })

  it('no proxy header and nothing verifies: the general hint', async () => {
    const cb = arriving('/elsewhere/cb', BODY, { url: '/cb' })
    expect(await refuse(cb)).toEqual({ code: 'OSS_CB_ERR_SIGNATURE_MISMATCH', hint: GENERAL_HINT })
  })

  it('a proxy header that explains nothing: says so, and no public path is suggested', async () => {
    const cb = arriving('/elsewhere/cb', BODY, { url: '/cb', headers: { 'x-original-uri': '/api/cb' } })
    const { hint } = await refuse(cb)
    expect(hint).toMatch(/^No single change explains the mismatch, not even the path in x-original-uri/)
    expect(hint).not.toContain('OSS_CALLBACK_PUBLIC_PATH=')
  })

  it('two changes at once are not explained: variants never combine', async () => {
    const cb = arriving('/api/cb', `${BODY}\n`, { url: '/cb', body: BODY, headers: { 'x-original-uri': '/api/cb' } })
    expect((await refuse(cb)).hint).toMatch(/^No single change explains/)
  })
})
