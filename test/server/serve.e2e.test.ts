import { request } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { docCallback } from '../helpers/fixtures.js'
import { runCli, type CliProcess } from '../helpers/process.js'
import { answerJson, startUpstream } from '../helpers/upstream.js'

let proc: CliProcess | undefined
afterEach(() => { if (proc !== undefined && proc.child.exitCode === null) proc.kill('SIGKILL'); proc = undefined })

async function start (env: Record<string, string> = {}): Promise<string> {
  proc = runCli(['serve'], { HOST: '127.0.0.1', PORT: '0', ...env })
  const m = await proc.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
  return m[1] as string
}

describe('oss-callback serve (a real process)', () => {
  it('answers the real OSS callback sent over HTTP as curl would', async () => {
    const origin = await start({ OSS_CALLBACK_PATH: '/index.php' })
    const res = await fetch(`${origin}${docCallback.path}${docCallback.query}`, { method: 'POST', headers: docCallback.headers, body: docCallback.body })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(await res.json()).toEqual({ Status: 'OK', bucket: 'yonghu-test', imageInfo: {} })
  })

  it('exits 1 with one clear line for a bad variable', async () => {
    proc = runCli(['serve'], { PORT: 'eighty' })
    expect(await proc.exited).toBe(1)
    expect(proc.stderr()).toBe('oss-callback: Invalid option: PORT must be a whole number from 0 to 65535, got "eighty" (OSS_CB_ERR_INVALID_OPTION)\n')
  })

  it('finishes an in-flight callback on SIGTERM, then exits 0', async () => {
    const origin = await start({ OSS_CALLBACK_PATH: '/index.php' })
    const url = new URL(`${origin}${docCallback.path}${docCallback.query}`)
    const answer = new Promise<{ status: number, body: string }>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: docCallback.headers }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => { body += d.toString() })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on('error', reject)
      // Half the body now, SIGTERM, then the rest: the request is in flight when the signal lands.
      req.write(docCallback.body.slice(0, 5))
      setTimeout(() => {
        proc!.kill('SIGTERM')
        setTimeout(() => req.end(docCallback.body.slice(5)), 300)
      }, 200)
    })
    const { status, body } = await answer
    expect(status).toBe(200)
    expect(JSON.parse(body)).toMatchObject({ Status: 'OK' })
    expect(await proc!.exited).toBe(0)
    // The listener is closed: a new connection is refused.
    await expect(fetch(`${origin}/healthz`)).rejects.toThrow()
  })

  it('a second SIGTERM is logged and the in-flight callback still gets its 200, then exit 0', async () => {
    // The upstream app takes a second; both signals land while the callback waits for it.
    let arrived!: () => void
    const atUpstream = new Promise<void>((resolve) => { arrived = resolve })
    const upstream = await startUpstream((_req, res) => { arrived(); setTimeout(() => answerJson('{"from":"app"}')(_req, res), 1000) })
    try {
      const origin = await start({
        OSS_CALLBACK_PATH: '/index.php',
        OSS_CALLBACK_FORWARD_URL: upstream.url('/hook'),
        OSS_CALLBACK_DATABASE_URL: 'none',
        OSS_CALLBACK_FORWARD_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}`
      })
      const answer = fetch(`${origin}${docCallback.path}${docCallback.query}`, { method: 'POST', headers: docCallback.headers, body: docCallback.body })
      answer.catch(() => {}) // awaited below; a failing run must not also report it unhandled
      await atUpstream
      proc!.kill('SIGTERM')
      await proc!.waitFor(/shutting down/)
      proc!.kill('SIGTERM')
      await proc!.waitFor(/already shutting down/)
      const res = await answer
      expect(res.status).toBe(200)
      expect(await res.json()).toEqual({ from: 'app' })
      expect(await proc!.exited).toBe(0)
    } finally {
      await upstream.close()
    }
  })
})
