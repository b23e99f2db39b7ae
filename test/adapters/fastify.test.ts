import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import ossCallbackDefault, { ossCallback } from '../../src/fastify.js'
import { docCallback } from '../helpers/fixtures.js'

describe('oss-callback/fastify', () => {
  it('is the plugin with fastify-plugin metadata (name, Fastify 5), also the default export', () => {
    expect(ossCallbackDefault).toBe(ossCallback)
    const meta = (ossCallback as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')]
    expect(meta).toMatchObject({ name: 'oss-callback', fastify: '5.x' })
    expect((ossCallback as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')]).toBe(false)
  })

  it('keeps its raw-body parsers encapsulated: the host app parses JSON as before, and the genuine callback verifies with no options', async () => {
    const app = Fastify()
    await app.register(ossCallback, { path: docCallback.path })
    app.post('/host/json', async (request) => ({ got: request.body }))
    await app.ready()
    try {
      const host = await app.inject({ method: 'POST', url: '/host/json', payload: { a: 1 } })
      expect(host.json()).toEqual({ got: { a: 1 } })
      const cb = await app.inject({ method: 'POST', url: docCallback.path + docCallback.query, headers: docCallback.headers, payload: docCallback.body })
      expect(cb.statusCode).toBe(200)
      expect(cb.body).toBe('{"Status":"OK"}')
    } finally {
      await app.close()
    }
  })
})
