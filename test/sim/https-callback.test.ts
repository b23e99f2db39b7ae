import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import { readFixture } from '../helpers/fixtures.js'
import { aliOssClient } from './stack.js'

// A self-signed certificate for localhost and 127.0.0.1 (test/fixtures, valid until 2126).
const cert = readFixture('tls-localhost.crt')
const key = readFixture('tls-localhost.key')

let sim: Simulator
const seen: Array<{ servername: string | false | null | undefined, host: string | undefined }> = []
let port = 0
const server = createServer({ key, cert }, (req, res) => {
  seen.push({ servername: (req.socket as TLSSocket).servername, host: req.headers.host })
  req.resume()
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': '12' }).end('{"tls":true}') })
})

beforeAll(async () => {
  sim = await startSimulator({ port: 0, callbackTrustedCa: [cert] })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
})
afterAll(async () => {
  await sim.close()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

async function put (key: string, sni: boolean): Promise<unknown> {
  const result = await aliOssClient(sim).put(key, Buffer.from('x'), {
    callback: { url: `https://localhost:${port}/cb`, body: 'object=${object}', ...(sni ? { callbackSNI: true } : {}) }
  } as never) as unknown as { data: unknown }
  return result.data
}

describe('https callback URLs', () => {
  it('sends TLS SNI only when callbackSNI is true, as OSS does', async () => {
    expect(await put('tls/no-sni.txt', false)).toEqual({ tls: true })
    expect(seen.at(-1)?.servername).toBeFalsy()
    expect(await put('tls/sni.txt', true)).toEqual({ tls: true })
    expect(seen.at(-1)?.servername).toBe('localhost')
    expect(seen.at(-1)?.host).toBe(`localhost:${port}`)
  })

  it('fails to connect (203) to a certificate it does not trust', async () => {
    const untrusting = await startSimulator({ port: 0 })
    try {
      const err = await aliOssClient(untrusting).put('tls/untrusted.txt', Buffer.from('x'), {
        callback: { url: `https://localhost:${port}/cb`, body: 'object=${object}' }
      } as never).then(() => undefined, (e: unknown) => e as { status: number, message: string })
      expect(err).toMatchObject({ status: 203, message: 'Error status : -1. OSS can not connect to your callbackUrl, please check it.' })
    } finally {
      await untrusting.close()
    }
  })
})
