import { readdirSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import type { FetchLike } from '../src/keys/provider.js'
import { buildApp } from '../src/server/app.js'
import { loadConfig } from '../src/server/config.js'
import { runSimCommand } from '../src/sim/commands.js'
import { sendTestCallback } from '../src/sim/send.js'
import type { Simulator } from '../src/sim/server.js'
import { docCallback } from './helpers/fixtures.js'

const pages = ['README.md', ...readdirSync(new URL('../docs/', import.meta.url)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
const docs = pages.map((page) => readFileSync(new URL(`../${page}`, import.meta.url), 'utf8')).join('\n')
const README_SIM_ORIGIN = 'http://127.0.0.1:8090'

let sim: Simulator | undefined
let receiver: FastifyInstance | undefined
afterEach(async () => {
  await receiver?.close()
  await sim?.close()
  receiver = undefined
  sim = undefined
})

describe('the OSS_CALLBACK_KEY_ORIGINS the README, docs/ and the simulator give', () => {
  it('regression: it named only the simulator, so real OSS callbacks got 403; the value given now verifies both a genuine OSS callback and a simulator-signed one', async () => {
    const documented = new Set([...docs.matchAll(/OSS_CALLBACK_KEY_ORIGINS=([^\s`]+)/g)].map((m) => m[1]))
    expect(documented.size).toBe(1)
    const value = [...documented][0] as string

    // The simulator as the README starts it (its key served at http://127.0.0.1:8090), on a free port.
    let banner = ''
    sim = await runSimCommand(['--port', '0', '--public-origin', README_SIM_ORIGIN], {}, { stdout: (t) => { banner += t }, stderr: () => {} }, false)
    const s = sim as Simulator
    expect(/OSS_CALLBACK_KEY_ORIGINS=(\S+)/.exec(banner)?.[1]).toBe(value)

    // The receiver fetches keys named on the README's origin from the simulator's real port.
    const fetch: FetchLike = (input, init) => globalThis.fetch(input.replace(README_SIM_ORIGIN, s.origin), init)
    receiver = await buildApp(loadConfig({ OSS_CALLBACK_KEY_ORIGINS: value, OSS_CALLBACK_PATH: '/index.php', LOG_LEVEL: 'silent' }), { keys: { fetch } })
    await receiver.listen({ host: '127.0.0.1', port: 0 })
    const port = (receiver.server.address() as AddressInfo).port

    const genuine = await receiver.inject({ method: 'POST', url: docCallback.path + docCallback.query, headers: docCallback.headers, payload: docCallback.body })
    expect([genuine.statusCode, genuine.json()]).toEqual([200, { Status: 'OK', bucket: 'yonghu-test', imageInfo: {} }])

    const simulated = await sendTestCallback({
      simUrl: s.origin,
      credentials: s.credentials,
      request: { callbackUrl: `http://127.0.0.1:${port}/index.php`, bucket: 'examplebucket', key: 'a.txt', size: 3 }
    })
    expect(simulated.attempts[0]?.status, simulated.attempts[0]?.body).toBe(200)
    expect(simulated.accepted).toBe(true)
  })
})
