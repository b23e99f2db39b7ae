import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { imageInfoOf } from '../../src/sim/image-info.js'
import { startSimulator } from '../../src/sim/server.js'
import { aliOssClient } from './stack.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'oss-sim-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('--data-dir', () => {
  it('keeps objects and the signing key (so the key URL) across restarts, with file names that are not keys', async () => {
    const first = await startSimulator({ port: 0, dataDir: dir })
    const key = 'deep/dir/中文 a+b.txt'
    await aliOssClient(first).put(key, Buffer.from('kept'), { headers: { 'x-oss-meta-a': '1' } })
    const keyUrlPath = new URL(first.publicKeyUrl).pathname
    await first.close()

    const second = await startSimulator({ port: 0, dataDir: dir })
    try {
      expect(new URL(second.publicKeyUrl).pathname).toBe(keyUrlPath)
      const got = await aliOssClient(second).get(key)
      expect(got.content.toString()).toBe('kept')
      expect(got.res.headers).toMatchObject({ 'x-oss-meta-a': '1', 'content-type': 'text/plain' })
      const files = await readdir(join(dir, 'objects', 'examplebucket'))
      expect(files.every((f) => /^[0-9a-f]{64}\.(bin|json)$/.test(f))).toBe(true)
    } finally {
      await second.close()
    }
  })

  it('gives a memory simulator a new key URL on each start (receivers cache keys by URL)', async () => {
    const a = await startSimulator({ port: 0 })
    const b = await startSimulator({ port: 0 })
    try {
      expect(new URL(a.publicKeyUrl).pathname).not.toBe(new URL(b.publicKeyUrl).pathname)
      expect(a.publicKeyUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback_pub_key_sim_[0-9a-f]{16}\.pem$/)
    } finally {
      await a.close()
      await b.close()
    }
  })
})

describe('imageInfoOf', () => {
  it('reads PNG, GIF, JPEG, BMP and WebP headers', () => {
    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.from([0, 0, 0, 20, 0, 0, 0, 10])])
    expect(imageInfoOf(png)).toEqual({ width: 20, height: 10, format: 'png' })
    const gif = Buffer.concat([Buffer.from('GIF89a'), Buffer.from([3, 1, 2, 0])])
    expect(imageInfoOf(gif)).toEqual({ width: 259, height: 2, format: 'gif' })
    // SOI, an APP0 segment, then SOF0 with height 480 and width 640.
    const jpeg = Buffer.from('ffd8ffe000104a46494600010100000100010000ffc000110801e0028003012200021101031101ffd9', 'hex')
    expect(imageInfoOf(jpeg)).toEqual({ width: 640, height: 480, format: 'jpg' })
    const bmp = Buffer.alloc(30)
    bmp.write('BM', 0, 'latin1')
    bmp.writeInt32LE(33, 18)
    bmp.writeInt32LE(-44, 22)
    expect(imageInfoOf(bmp)).toEqual({ width: 33, height: 44, format: 'bmp' })
    const webp = Buffer.alloc(30)
    webp.write('RIFF', 0, 'latin1')
    webp.write('WEBPVP8X', 8, 'latin1')
    webp.writeUIntLE(99, 24, 3)
    webp.writeUIntLE(49, 27, 3)
    expect(imageInfoOf(webp)).toEqual({ width: 100, height: 50, format: 'webp' })
  })

  it('gives nothing for other content', () => {
    expect(imageInfoOf(Buffer.from('hello world, not an image'))).toBeUndefined()
    expect(imageInfoOf(Buffer.alloc(0))).toBeUndefined()
  })
})

describe('listing from --data-dir', () => {
  it('lists keys stored before a restart in byte order, and follows puts and deletes after it', async () => {
    const listDir = await mkdtemp(join(tmpdir(), 'oss-sim-list-'))
    const first = await startSimulator({ port: 0, dataDir: listDir })
    try {
      for (const k of ['b', 'a/2', 'a/1']) await aliOssClient(first, 'listed').put(k, Buffer.from(k))
    } finally {
      await first.close()
    }
    const second = await startSimulator({ port: 0, dataDir: listDir })
    try {
      const client = aliOssClient(second, 'listed')
      expect((await client.list({} as never, {})).objects.map((o) => [o.name, o.size])).toEqual([['a/1', 3], ['a/2', 3], ['b', 1]])
      await client.put('a/0', Buffer.from('new'))
      await client.delete('b')
      const page = await client.listV2({ delimiter: '/' } as never, {})
      expect([page.objects.map((o) => o.name), page.prefixes]).toEqual([[], ['a/']])
      expect((await client.list({ prefix: 'a/' } as never, {})).objects.map((o) => o.name)).toEqual(['a/0', 'a/1', 'a/2'])
    } finally {
      await second.close()
      await rm(listDir, { recursive: true, force: true })
    }
  })
})
