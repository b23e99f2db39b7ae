import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createCaptureWriter, formatCapture, type CapturedRequest } from '../../src/diagnose/capture.js'
import { parseRequestFile } from '../../src/diagnose/request-file.js'

const dirs: string[] = []
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })
function tempDir (): string {
  const d = mkdtempSync(join(tmpdir(), 'oss-cb-capture-'))
  dirs.push(d)
  return join(d, 'captures')
}

function request (n: number, body = `bucket=b&object=o${n}&size=1`): CapturedRequest {
  return {
    method: 'POST',
    url: `/oss/callback?n=${n}`,
    httpVersion: '1.0',
    rawHeaders: ['Host', '127.0.0.1', 'authorization', 'c2ln', 'X-Dup', 'a', 'X-Dup', 'b', 'Content-Length', String(Buffer.byteLength(body))],
    body: Buffer.from(body)
  }
}

describe('capture writer', () => {
  it('writes the request line, headers (case, order, repeats) and body exactly, mode 0600, in a 0700 directory', async () => {
    const dir = tempDir()
    const writer = createCaptureWriter({ dir })
    const body = Buffer.from([0x61, 0x0d, 0x0a, 0x00, 0xff, 0x0a])
    const path = await writer.write({ ...request(1), body })
    expect(path).toBeDefined()
    const bytes = readFileSync(path as string)
    expect(bytes).toEqual(Buffer.concat([
      Buffer.from('POST /oss/callback?n=1 HTTP/1.0\r\nHost: 127.0.0.1\r\nauthorization: c2ln\r\nX-Dup: a\r\nX-Dup: b\r\nContent-Length: 47\r\n\r\n'.replace('47', String(request(1).body?.length))),
      body
    ]))
    expect(statSync(path as string).mode & 0o777).toBe(0o600)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    const parsed = parseRequestFile(bytes)
    expect(parsed.body).toEqual(body)
    expect(parsed.headers['x-dup']).toEqual(['a', 'b'])
    expect(parsed.rawHeaders).toEqual(request(1).rawHeaders)
  })

  it('bounds each file: a long body is cut at captureMaxBytes, and diagnose notes the short body', async () => {
    const writer = createCaptureWriter({ dir: tempDir(), maxBytes: 300 })
    const path = await writer.write(request(1, 'x'.repeat(10_000)))
    const bytes = readFileSync(path as string)
    expect(bytes.length).toBe(300)
    expect(parseRequestFile(bytes).notes.join()).toMatch(/Content-Length says 10000 bytes, the file holds \d+: the capture was cut/)
  })

  it('keeps the last captureMax, oldest first out, across writers on the same directory', async () => {
    const dir = tempDir()
    let now = 1_700_000_000_000
    const first = createCaptureWriter({ dir, max: 3, now: () => now++ })
    for (let i = 1; i <= 5; i++) await first.write(request(i))
    const read = (): string[] => readdirSync(dir).sort().map((f) => parseRequestFile(readFileSync(join(dir, f))).url)
    expect(read()).toEqual(['/oss/callback?n=3', '/oss/callback?n=4', '/oss/callback?n=5'])
    const second = createCaptureWriter({ dir, max: 3, now: () => now++ })
    await second.write(request(6))
    expect(read()).toEqual(['/oss/callback?n=4', '/oss/callback?n=5', '/oss/callback?n=6'])
  })

  it('keeps names in order when the clock steps back', async () => {
    const dir = tempDir()
    let now = 2_000_000_000_000
    const writer = createCaptureWriter({ dir, max: 2, now: () => now })
    await writer.write(request(1))
    now -= 60_000
    await writer.write(request(2))
    await writer.write(request(3))
    expect(readdirSync(dir).sort().map((f) => parseRequestFile(readFileSync(join(dir, f))).url)).toEqual(['/oss/callback?n=2', '/oss/callback?n=3'])
  })

  it('is rate-limited like diagnoses: a flood is not a flood of disk writes', async () => {
    const dir = tempDir()
    let now = 0
    const writer = createCaptureWriter({ dir, max: 1000, perSecond: 5, now: () => now })
    const written = await Promise.all(Array.from({ length: 50 }, (_, i) => writer.write(request(i))))
    expect(written.filter((p) => p !== undefined)).toHaveLength(5)
    now += 1000
    await writer.write(request(99))
    await writer.flush()
    expect(readdirSync(dir)).toHaveLength(6)
  })

  it('reports a failed write and never rejects', async () => {
    const errors: unknown[] = []
    const parent = tempDir()
    const blocker = `${parent}-file`
    writeFileSync(blocker, 'not a directory')
    const writer = createCaptureWriter({ dir: join(blocker, 'captures'), onError: (e) => errors.push(e) })
    expect(await writer.write(request(1))).toBeUndefined()
    expect(errors).toHaveLength(1)
    expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOTDIR')
  })

  it('formats what was never read as an empty body', () => {
    expect(formatCapture({ method: 'GET', url: '/cb', rawHeaders: ['Host', 'h'] }).toString()).toBe('GET /cb HTTP/1.1\r\nHost: h\r\n\r\n')
  })
})
