import { domainToASCII } from 'node:url'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { FetchLike } from '../../src/keys/provider.js'
import { OSS_CALLBACK_PUBLIC_KEY_V1_PEM } from '../../src/keys/pinned.js'
import { DEFAULT_KEY_ORIGINS } from '../../src/protocol/key-url.js'
import { startKeyServer, type KeyServer } from '../helpers/key-server.js'
import { signedCallback, testKeyPair } from '../helpers/keys.js'
import { expectCodedError, expectHealthy, expectNoSecretsInLog, pemBodyLines, post, startApp, testConfig, type Reply, type RunningApp } from '../helpers/server.js'

let evil: KeyServer
let good: KeyServer
let running: RunningApp
let app: FastifyInstance
const pair = testKeyPair(512)
const secrets = new Set<string>([...pemBodyLines(OSS_CALLBACK_PUBLIC_KEY_V1_PEM), ...pemBodyLines(pair.publicPem)])

beforeAll(async () => {
  evil = await startKeyServer({ '/k.pem': { kind: 'pem', pem: pair.publicPem }, '/callback_pub_key_v1.pem': { kind: 'pem', pem: pair.publicPem } })
  good = await startKeyServer({
    '/k.pem': { kind: 'pem', pem: pair.publicPem },
    '/redirect-to-https.pem': { kind: 'redirect', location: `https://127.0.0.1:${new URL(evil.origin).port}/k.pem`, status: 301 },
    '/redirect-cross-host.pem': { kind: 'redirect', location: `${evil.origin}/k.pem`, status: 302 },
    '/redirect-307.pem': { kind: 'redirect', location: `${evil.origin}/k.pem`, status: 307 },
    '/redirect-308.pem': { kind: 'redirect', location: `${evil.origin}/k.pem`, status: 308 },
    '/redirect-same-origin.pem': { kind: 'redirect', location: '/k.pem', status: 302 }
  })
  // Any fetch to a host other than the allowed local key server lands on the evil server and is counted there,
  // so that a look-alike DNS name that slipped through the policy would show up as a hit instead of a DNS lookup.
  const fetchAnywhere: FetchLike = (input, init) => {
    const url = new URL(input)
    return globalThis.fetch(url.origin === good.origin ? input : `${evil.origin}${url.pathname}`, init)
  }
  running = await startApp(testConfig({ keyOrigins: [...DEFAULT_KEY_ORIGINS, good.origin] }), { keys: { fetch: fetchAnywhere } })
  app = running.app
})

afterAll(async () => {
  await running.close()
  await evil.close()
  await good.close()
})

afterEach(async () => {
  expect(evil.total()).toBe(0)
  await expectHealthy(running.origin)
  expectNoSecretsInLog(running.log, secrets)
})

function asReply (res: LightMyRequestResponse): Reply {
  return { status: res.statusCode, headers: res.headers as Reply['headers'], body: res.body }
}

async function sendWithKeyUrl (keyUrl: string): Promise<Reply> {
  const cb = signedCallback({ keyUrl, privateKey: pair.privateKey })
  secrets.add(cb.headers.authorization as string)
  return asReply(await app.inject({ method: 'POST', url: cb.url, headers: cb.headers, payload: cb.body }))
}

// {EVIL} and {GOOD} stand for the ports of the evil and the allowed local key servers.
const TRICKS: Array<[string, string]> = [
  ['userinfo naming the allowed host', `https://gosspublic.alicdn.com@127.0.0.1:{EVIL}/callback_pub_key_v1.pem`],
  ['user and password before the allowed host', 'https://user:pass@gosspublic.alicdn.com/callback_pub_key_v1.pem'],
  ['userinfo before the allowed loopback origin', `http://x@127.0.0.1:{GOOD}/k.pem`],
  ['suffix host', 'https://gosspublic.alicdn.com.evil.example/callback_pub_key_v1.pem'],
  ['look-alike host (1 for l)', 'https://gosspub1ic.alicdn.com/callback_pub_key_v1.pem'],
  ['subdomain of the allowed host', 'https://keys.gosspublic.alicdn.com/callback_pub_key_v1.pem'],
  ['allowed host as a prefix of a label', 'https://gosspublic.alicdn.comevil.example/callback_pub_key_v1.pem'],
  ['trailing dot', 'https://gosspublic.alicdn.com./callback_pub_key_v1.pem'],
  ['upper-case host', 'https://GOSSPUBLIC.ALICDN.COM/callback_pub_key_v1.pem'],
  ['upper-case scheme', 'HTTPS://gosspublic.alicdn.com/callback_pub_key_v1.pem'],
  ['IDN host with a Cyrillic i', 'https://gosspubl\u0456c.alicdn.com/callback_pub_key_v1.pem'],
  ['punycode of that IDN host', `https://${domainToASCII('gosspubl\u0456c.alicdn.com')}/callback_pub_key_v1.pem`],
  ['explicit default port', 'https://gosspublic.alicdn.com:443/callback_pub_key_v1.pem'],
  ['explicit other port on the allowed host', 'https://gosspublic.alicdn.com:8443/callback_pub_key_v1.pem'],
  ['allowed loopback host on another port', `http://127.0.0.1:{EVIL}/k.pem`],
  ['localhost for the allowed 127.0.0.1', `http://localhost:{GOOD}/k.pem`],
  ['IPv4 in decimal', `http://2130706433:{GOOD}/k.pem`],
  ['IPv4 in octal', `http://0177.0.0.1:{GOOD}/k.pem`],
  ['IPv4 in hex', `http://0x7f.0.0.1:{GOOD}/k.pem`],
  ['IPv4 shortened', `http://127.1:{GOOD}/k.pem`],
  ['IPv6 loopback', `http://[::1]:{GOOD}/k.pem`],
  ['IPv4-mapped IPv6', `http://[::ffff:127.0.0.1]:{GOOD}/k.pem`],
  ['percent-encoded dot in the host', 'https://gosspublic%2ealicdn.com/callback_pub_key_v1.pem'],
  ['percent-encoded dots in the path', 'https://gosspublic.alicdn.com/%2e%2e/callback_pub_key_v1.pem'],
  ['percent-encoded slashes in the path', 'https://gosspublic.alicdn.com/..%2f..%2fcallback_pub_key_v1.pem'],
  ['double percent-encoding', 'https://gosspublic.alicdn.com/%252e%252e/callback_pub_key_v1.pem'],
  ['percent-encoded NUL in the host', 'https://gosspublic.alicdn.com%00.evil.example/callback_pub_key_v1.pem'],
  ['backslashes for slashes', 'https:\\\\gosspublic.alicdn.com\\callback_pub_key_v1.pem'],
  ['backslash before userinfo', `http://127.0.0.1:{EVIL}\\@gosspublic.alicdn.com/callback_pub_key_v1.pem`],
  ['fragment hiding the real host', `http://127.0.0.1:{EVIL}#@gosspublic.alicdn.com/callback_pub_key_v1.pem`],
  ['fragment after the key path', 'https://gosspublic.alicdn.com/callback_pub_key_v1.pem#x'],
  ['query after the key path', 'https://gosspublic.alicdn.com/callback_pub_key_v1.pem?v=2'],
  ['allowed URL in the query of another host', 'https://evil.example/?https://gosspublic.alicdn.com/callback_pub_key_v1.pem'],
  ['dot-dot path', 'https://gosspublic.alicdn.com/keys/../callback_pub_key_v1.pem'],
  ['nested path', 'https://gosspublic.alicdn.com/keys/callback_pub_key_v1.pem'],
  ['not a .pem name', 'https://gosspublic.alicdn.com/callback_pub_key_v1.txt'],
  ['data: URL with a PEM', `data:application/x-pem-file;base64,${Buffer.from(pair.publicPem).toString('base64')}`],
  ['file: URL', 'file:///etc/ssl/callback_pub_key_v1.pem'],
  ['ftp: URL on the allowed host', 'ftp://gosspublic.alicdn.com/callback_pub_key_v1.pem'],
  ['protocol-relative URL', '//gosspublic.alicdn.com/callback_pub_key_v1.pem'],
  ['trailing new line', 'https://gosspublic.alicdn.com/callback_pub_key_v1.pem\n'],
  ['leading space', ' https://gosspublic.alicdn.com/callback_pub_key_v1.pem'],
  ['tab inside the host', 'https://gosspublic.ali\tcdn.com/callback_pub_key_v1.pem'],
  ['over-long URL (2049 characters)', `https://gosspublic.alicdn.com/${'a'.repeat(2015)}.pem`]
]

describe('key URL tricks: each one answered 403 OSS_CB_ERR_KEY_URL_NOT_ALLOWED with no request to any key host', () => {
  it('has at least 20 tricks', () => {
    expect(TRICKS.length).toBeGreaterThanOrEqual(20)
  })

  for (const [label, template] of TRICKS) {
    it(label, async () => {
      const url = template.replaceAll('{EVIL}', new URL(evil.origin).port).replaceAll('{GOOD}', new URL(good.origin).port)
      const res = await sendWithKeyUrl(url)
      expectCodedError(res, 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED')
    })
  }

  it('the allowed local key server itself works (so the refusals above are the policy, not a broken set-up)', async () => {
    const res = await sendWithKeyUrl(`${good.origin}/k.pem`)
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ Status: 'OK', bucket: 'b', object: 'a/b.jpg', size: 42 })
  })
})

describe('redirects from an allowed key origin are a failed fetch (502), never followed', () => {
  for (const path of ['/redirect-to-https.pem', '/redirect-cross-host.pem', '/redirect-307.pem', '/redirect-308.pem', '/redirect-same-origin.pem']) {
    it(path, async () => {
      const before = good.hits.get('/k.pem') ?? 0
      const res = await sendWithKeyUrl(`${good.origin}${path}`)
      expectCodedError(res, 'OSS_CB_ERR_KEY_FETCH_FAILED')
      expect(good.hits.get(path)).toBe(1)
      expect(good.hits.get('/k.pem') ?? 0).toBe(before)
    })
  }

  it('over a real socket too', async () => {
    const cb = signedCallback({ keyUrl: `${good.origin}/redirect-cross-host.pem`, privateKey: pair.privateKey })
    secrets.add(cb.headers.authorization as string)
    // Same URL again within the failure back-off: refused fast with 503, still no request anywhere.
    const res = await post(running.origin, cb.url, { headers: cb.headers, body: cb.body })
    expectCodedError(res, 'OSS_CB_ERR_KEY_FETCH_BACKOFF')
    expect(good.hits.get('/redirect-cross-host.pem')).toBe(1)
  })
})

describe('the captured log', () => {
  it('records every refusal with its code and reason (so the leak checks above read a real log)', () => {
    const refused = running.log.lines().filter((l) => l.code === 'OSS_CB_ERR_KEY_URL_NOT_ALLOWED')
    expect(refused.length).toBeGreaterThanOrEqual(TRICKS.length)
    for (const line of refused) expect(typeof line.reason).toBe('string')
    expect(running.log.lines().filter((l) => l.code === 'OSS_CB_ERR_KEY_FETCH_FAILED').map((l) => l.reason))
      .toContain('key URL redirected (not followed)')
  })
})
