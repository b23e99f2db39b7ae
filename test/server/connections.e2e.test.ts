import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { docCallback } from '../helpers/fixtures.js'
import { errorBody, parseRawResponse, startApp, testConfig, type RunningApp } from '../helpers/server.js'

let running: RunningApp | undefined
afterEach(async () => { await running?.close(); running = undefined })

/** The documented OSS callback as raw request bytes, kept alive unless `close`. */
function docRequest (close: boolean): Buffer {
  const headers = Object.entries(docCallback.headers).filter(([n]) => n !== 'connection').map(([n, v]) => `${n}: ${v}`)
  const head = [`POST ${docCallback.path}${docCallback.query} HTTP/1.1`, ...headers, `Connection: ${close ? 'close' : 'keep-alive'}`].join('\r\n')
  return Buffer.from(`${head}\r\n\r\n${docCallback.body}`, 'latin1')
}

/** Sends `data` in one go on a new connection; resolves with everything read before the close. */
function exchange (port: number, data: Buffer, timeoutMs = 10_000): Promise<{ raw: string, closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('exchange timed out')) }, timeoutMs)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => { clearTimeout(timer); resolve({ raw: Buffer.concat(chunks).toString('latin1'), closedAfterMs: Date.now() - started }) })
    socket.write(data)
  })
}

/**
 * A client that sends its whole request before it reads the answer, as simple uploaders do: a reset
 * while it still sends fails its write and loses the answer waiting unread.
 */
function sendThenRead (port: number, data: Buffer): Promise<{ status: number, body: string, error?: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.pause()
    const chunks: Buffer[] = []
    let error: string | undefined
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (err: NodeJS.ErrnoException) => { error = err.code })
    socket.on('close', () => { resolve({ ...parseRawResponse(Buffer.concat(chunks).toString('latin1')), ...(error === undefined ? {} : { error }) }) })
    // Paced as over a real network (64 KiB every 2 ms), so the client is still sending when the refusal comes.
    let offset = 0
    const next = (): void => {
      if (socket.destroyed) return
      const chunk = data.subarray(offset, offset + 65_536)
      offset += chunk.length
      if (offset >= data.length) socket.write(chunk, () => { socket.resume() })
      else socket.write(chunk, () => { setTimeout(next, 2) })
    }
    next()
  })
}

describe('connections', () => {
  it('a 3 MB body, 20 times in a row: 20 coded 413s read, none lost to a reset while the client still sends', async () => {
    running = await startApp(testConfig({ path: '/index.php' }))
    const headers = Object.entries(docCallback.headers).filter(([n]) => n !== 'content-length' && n !== 'connection').map(([n, v]) => `${n}: ${v}`)
    const body = Buffer.alloc(3_000_000, 0x61)
    const head = [`POST ${docCallback.path}${docCallback.query} HTTP/1.1`, ...headers, `Content-Length: ${body.length}`, 'Connection: close'].join('\r\n')
    const request = Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body])
    const outcomes: Array<number | string> = []
    for (let i = 0; i < 20; i++) {
      const res = await sendThenRead(running.port, request)
      outcomes.push(res.status === 0 ? res.error ?? 'nothing read' : res.status)
      if (res.status === 413) expect(JSON.parse(res.body)).toEqual(errorBody('OSS_CB_ERR_BODY_TOO_LARGE'))
    }
    expect(outcomes).toEqual(Array.from({ length: 20 }, () => 413))
  })

  it('the lingering close after a refusal is bounded in time: a client that never stops sending is cut off after maxMs', async () => {
    running = await startApp(testConfig({ path: '/index.php' }), { lingeringClose: { maxMs: 300 } })
    const result = await new Promise<{ raw: string, closedAfterMs: number }>((resolve) => {
      const started = Date.now()
      // Half-open, as a client busy sending its body is: our FIN does not end its side.
      const socket = connect({ port: running!.port, host: '127.0.0.1', allowHalfOpen: true })
      const chunks: Buffer[] = []
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('error', () => {})
      socket.write(`POST ${docCallback.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000000\r\n\r\n`)
      // A trickle: far below the byte bound, so only the time bound can end it.
      const trickle = setInterval(() => { if (socket.writable) socket.write(Buffer.alloc(1000, 0x61)) }, 20)
      socket.on('close', () => { clearInterval(trickle); resolve({ raw: Buffer.concat(chunks).toString('latin1'), closedAfterMs: Date.now() - started }) })
    })
    expect(parseRawResponse(result.raw).status).toBe(413)
    expect(result.closedAfterMs).toBeGreaterThanOrEqual(250)
    expect(result.closedAfterMs).toBeLessThan(3000)
  })

  it('the lingering close is bounded in bytes: a client sending fast is cut off after maxBytes', async () => {
    running = await startApp(testConfig({ path: '/index.php' }), { lingeringClose: { maxBytes: 1_000_000, maxMs: 30_000 } })
    const head = `POST ${docCallback.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000000\r\n\r\n`
    const result = await exchange(running.port, Buffer.concat([Buffer.from(head), Buffer.alloc(20_000_000, 0x61)]), 20_000)
    expect(parseRawResponse(result.raw).status).toBe(413)
    // Cut off by the byte bound long before the 30 s time bound.
    expect(result.closedAfterMs).toBeLessThan(10_000)
  })

  it('a malformed request pipelined behind a slow callback: the first bytes read are the callback\'s 200, then the connection closes', async () => {
    running = await startApp(testConfig({ path: '/index.php' }), {
      handler: async () => { await new Promise((resolve) => setTimeout(resolve, 500)); return { Status: 'OK', slow: true } }
    })
    const { raw } = await exchange(running.port, Buffer.concat([docRequest(false), Buffer.from('GARBAGE\r\n\r\n', 'latin1')]))
    expect(raw.startsWith('HTTP/1.1 200 ')).toBe(true)
    expect(JSON.parse(parseRawResponse(raw).body)).toEqual({ Status: 'OK', slow: true })
    // Nothing after the callback's answer: no error reply for the garbage, which got the close instead.
    expect(raw.slice(raw.indexOf('\r\n\r\n') + 4)).toBe('{"Status":"OK","slow":true}')
  })

  it('headers over the limit pipelined behind a slow callback: the callback\'s 200 comes first and alone', async () => {
    running = await startApp(testConfig({ path: '/index.php' }), {
      handler: async () => { await new Promise((resolve) => setTimeout(resolve, 500)); return { Status: 'OK', slow: true } }
    })
    const huge = `GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`
    const { raw } = await exchange(running.port, Buffer.concat([docRequest(false), Buffer.from(huge, 'latin1')]))
    expect(raw.startsWith('HTTP/1.1 200 ')).toBe(true)
    expect(raw.slice(raw.indexOf('\r\n\r\n') + 4)).toBe('{"Status":"OK","slow":true}')
  })

  it('a malformed request on a fresh connection still gets its coded 400', async () => {
    running = await startApp(testConfig({ path: '/index.php' }))
    const { raw } = await exchange(running.port, Buffer.from('GARBAGE\r\n\r\n', 'latin1'))
    const res = parseRawResponse(raw)
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body)).toEqual(errorBody('OSS_CB_ERR_BAD_REQUEST'))
  })
})
