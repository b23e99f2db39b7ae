import { describe, expect, it } from 'vitest'
import { buildSimulator, listenSimulator } from '../../src/sim/server.js'

describe('buildSimulator and listenSimulator', () => {
  it('builds the app unstarted (usable with inject), then listens in a separate step', async () => {
    const built = await buildSimulator({ port: 0 })
    expect(built.app.server.listening).toBe(false)
    const health = await built.app.inject({ method: 'GET', url: '/-/health' })
    expect([health.statusCode, health.json()]).toEqual([200, { status: 'ok' }])
    const unsigned = await built.app.inject({ method: 'GET', url: '/examplebucket/a.txt' })
    expect(unsigned.statusCode).toBe(403)
    const sim = await listenSimulator(built)
    try {
      expect(built.app.server.listening).toBe(true)
      expect(sim.publicKeyUrl.startsWith(`${sim.origin}/callback_pub_key_sim_`)).toBe(true)
      const key = await fetch(sim.publicKeyUrl)
      expect(await key.text()).toMatch(/^-----BEGIN PUBLIC KEY-----/)
    } finally {
      await sim.close()
    }
  })
})
