import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import OSS from 'ali-oss'
import { XMLParser } from 'fast-xml-parser'
import type { VerifiedCallback } from '../../src/receiver/verify.js'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/sim/server.js'

/** A simulator and a real receiver that trusts it, both on 127.0.0.1. */
export interface Stack {
  sim: Simulator
  receiver: FastifyInstance
  /** `http://127.0.0.1:<port>/oss/callback` */
  callbackUrl: string
  /** Every callback the receiver verified, in order. */
  received: VerifiedCallback[]
  close: () => Promise<void>
}

export async function startStack (options: SimulatorOptions = {}): Promise<Stack> {
  const sim = await startSimulator({ port: 0, ...options })
  const received: VerifiedCallback[] = []
  const receiver = await buildApp(loadConfig({ OSS_CALLBACK_KEY_ORIGINS: sim.origin, LOG_LEVEL: 'silent' }), {
    handler: (callback) => {
      received.push(callback)
      return { Status: 'OK', object: callback.system.object, size: callback.system.size, vars: callback.vars }
    }
  })
  await receiver.listen({ port: 0, host: '127.0.0.1' })
  const port = (receiver.server.address() as AddressInfo).port
  return {
    sim,
    receiver,
    callbackUrl: `http://127.0.0.1:${port}/oss/callback`,
    received,
    close: async () => {
      await receiver.close()
      await sim.close()
    }
  }
}

/** An ali-oss client pointed at the simulator, as a user would configure it. */
export function aliOssClient (sim: Simulator, bucket = 'examplebucket'): OSS {
  return new OSS({
    endpoint: sim.origin,
    accessKeyId: sim.credentials.accessKeyId,
    accessKeySecret: sim.credentials.accessKeySecret,
    bucket,
    region: 'oss-cn-hangzhou',
    timeout: 20_000
  })
}

/** A loopback HTTP server with a fixed behaviour, standing in for a broken receiver. */
export async function startFakeReceiver (handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string, server: Server, requests: number, close: () => Promise<void> }> {
  const state = { requests: 0 }
  const server = createServer((req, res) => {
    state.requests++
    req.resume()
    handle(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/cb`,
    server,
    get requests () { return state.requests },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A reply read whole. */
export interface RawReply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  text: string
}

/** Sends one HTTP request exactly as given (path and headers untouched) to 127.0.0.1. */
export async function rawRequest (port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawReply> {
  const { request } = await import('node:http')
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false, setHost: headers.Host === undefined && headers.host === undefined }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const data = Buffer.concat(chunks)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data, text: data.toString('utf8') })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** V1 headers for a request, signed with the project's own V1 signer. */
export async function v1Headers (sim: Simulator, method: string, resource: string, headers: Record<string, string> = {}, secret = sim.credentials.accessKeySecret): Promise<Record<string, string>> {
  const { signV1, v1StringToSign } = await import('../../src/protocol/oss-signing.js')
  const all = { date: new Date().toUTCString(), ...headers }
  const signature = signV1(secret, v1StringToSign({ method, resource, headers: all }))
  return { ...all, authorization: `OSS ${sim.credentials.accessKeyId}:${signature}` }
}

/** The `<Code>` and `<Message>` of an OSS XML error. */
export function xmlError (text: string): Record<string, string> {
  const doc = new XMLParser({ parseTagValue: false, processEntities: true }).parse(text) as { Error?: Record<string, string> }
  return doc.Error ?? {}
}

/** A V1-signed request, with the query's sub-resources signed as OSS signs them; `key` '' for a bucket request. */
export async function signedRequest (sim: Simulator, method: string, bucket: string, key: string, query: Array<[string, string]>, headers: Record<string, string> = {}, body?: string): Promise<RawReply> {
  const { signV1, v1StringToSign } = await import('../../src/protocol/oss-signing.js')
  const all = { date: new Date().toUTCString(), ...headers }
  const signature = signV1(sim.credentials.accessKeySecret, v1StringToSign({ method, resource: `/${bucket}/${key}`, headers: all, query }))
  const qs = query.map(([k, v]) => (v === '' ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join('&')
  const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}${qs === '' ? '' : `?${qs}`}`
  return await rawRequest(Number(new URL(sim.origin).port), method, path, { ...all, authorization: `OSS ${sim.credentials.accessKeyId}:${signature}` }, body)
}
