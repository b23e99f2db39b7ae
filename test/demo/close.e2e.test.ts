import { connect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { startDemo } from '../../src/demo/demo.js'

// A browser opens spare sockets that may never carry a request. Closing only idle connections left them
// open until the 60 s headers timeout, so demo.close() hung for a minute (the Chromium test's "stall").
function openSpareSocket (origin: string): Promise<Socket> {
  const { hostname, port } = new URL(origin)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => { resolve(socket) })
    socket.on('error', reject)
  })
}

const within = <T>(work: Promise<T>, ms: number): Promise<T | 'still waiting'> =>
  Promise.race([work, new Promise<'still waiting'>((resolve) => setTimeout(() => { resolve('still waiting') }, ms))])

describe('demo close with a browser\'s spare sockets open', () => {
  it('closes the page server and the simulator without waiting for sockets that never sent a request', async () => {
    const demo = await startDemo({ port: 0 })
    const spare = await Promise.all([openSpareSocket(demo.url), openSpareSocket(demo.simOrigin)])
    const closed = spare.map((s) => new Promise<void>((resolve) => { s.on('close', () => { resolve() }) }))
    expect(await within(demo.close().then(() => 'closed'), 10_000)).toBe('closed')
    expect(await within(Promise.all(closed).then(() => 'sockets closed'), 5_000)).toBe('sockets closed')
  }, 30_000)
})
