import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { XMLParser } from 'fast-xml-parser'
import type OSS from 'ali-oss'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import { aliOssClient, signedRequest, xmlError, type RawReply } from './stack.js'

let sim: Simulator
let client: OSS
beforeAll(async () => {
  sim = await startSimulator({ port: 0 })
  client = aliOssClient(sim, 'listbucket')
})
afterAll(async () => { await sim.close() })

async function signed (method: string, bucket: string, key: string, query: Array<[string, string]>): Promise<RawReply> {
  return await signedRequest(sim, method, bucket, key, query)
}

const parse = (text: string): unknown => new XMLParser({ parseTagValue: false }).parse(text) as unknown
const partsOf = (r: { parts: unknown }): Array<Record<string, string>> => (Array.isArray(r.parts) ? r.parts : [r.parts]) as Array<Record<string, string>>

describe('ListObjects and ListObjectsV2 with ali-oss', () => {
  // Byte order puts 'b/\u{1F600}' (F0 9F ...) after 'b/\uFFFD' (EF BF BD), unlike UTF-16 order.
  const keys = ['a.txt', 'b/1', 'b/2', 'b/\uFFFD', 'b/\u{1F600}', 'c/d/e', 'c/x', 'd 1+1=2?.txt', 'e']
  beforeAll(async () => {
    for (const k of [...keys].reverse()) await client.put(k, Buffer.from(k))
  })

  it('pages through every key in byte order with small max-keys, with OSS element values', async () => {
    const seen: string[] = []
    let marker: string | undefined
    let pages = 0
    for (;;) {
      const page = await client.list({ 'max-keys': 2, ...(marker === undefined ? {} : { marker }) }, {})
      pages++
      seen.push(...page.objects.map((o) => o.name))
      if (!page.isTruncated) {
        expect(page.nextMarker).toBeNull()
        break
      }
      marker = page.nextMarker as string
      expect(marker).toBe(page.objects.at(-1)?.name)
    }
    expect(seen).toEqual(keys)
    expect(pages).toBe(5)
    const first = (await client.list({ 'max-keys': 1 }, {})).objects[0] as unknown as Record<string, unknown>
    expect(first).toMatchObject({ name: 'a.txt', etag: '"A5E54D1FD7BB69A228EF0DCD2431367E"', type: 'Normal', size: 5, storageClass: 'Standard', owner: { id: expect.any(String), displayName: expect.any(String) } })
    expect(first.lastModified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  })

  it('rolls keys up into CommonPrefixes with prefix and delimiter, and pages across them', async () => {
    const top = await client.list({ delimiter: '/' } as never, {})
    expect(top.objects.map((o) => o.name)).toEqual(['a.txt', 'd 1+1=2?.txt', 'e'])
    expect(top.prefixes).toEqual(['b/', 'c/'])
    const under = await client.list({ prefix: 'c/', delimiter: '/' } as never, {})
    expect(under.objects.map((o) => o.name)).toEqual(['c/x'])
    expect(under.prefixes).toEqual(['c/d/'])
    // A page may end on a common prefix; the next one starts after everything under it.
    const p1 = await client.list({ delimiter: '/', 'max-keys': 2 }, {})
    expect([p1.objects.map((o) => o.name), p1.prefixes, p1.nextMarker]).toEqual([['a.txt'], ['b/'], 'b/'])
    const p2 = await client.list({ delimiter: '/', 'max-keys': 2, marker: 'b/' }, {})
    expect([p2.objects.map((o) => o.name), p2.prefixes]).toEqual([['d 1+1=2?.txt'], ['c/']])
  })

  it('V2: opaque continuation token, KeyCount, start-after, fetch-owner', async () => {
    const seen: string[] = []
    let token: string | undefined
    for (;;) {
      const page = await client.listV2({ 'max-keys': 3, ...(token === undefined ? {} : { 'continuation-token': token }) }, {})
      expect(page.keyCount).toBe(page.objects.length)
      expect(page.objects.every((o) => o.owner === null)).toBe(true)
      seen.push(...page.objects.map((o) => o.name))
      if (!page.isTruncated) break
      token = page.nextContinuationToken as string
      expect(token).not.toContain('/')
      expect(seen).not.toContain(token)
    }
    expect(seen).toEqual(keys)
    const after = await client.listV2({ 'start-after': 'c/x', 'fetch-owner': true, delimiter: '/' } as never, {})
    expect(after.objects.map((o) => o.name)).toEqual(['d 1+1=2?.txt', 'e'])
    expect(after.objects[0]?.owner).toMatchObject({ id: expect.any(String) })
    const grouped = await client.listV2({ delimiter: '/', 'max-keys': 10 }, {})
    expect(grouped.keyCount).toBe(5)
    const bad = await signed('GET', 'listbucket', '', [['list-type', '2'], ['continuation-token', 'not-a-token']])
    expect([bad.status, xmlError(bad.text).Code]).toEqual([400, 'InvalidArgument'])
  })

  it('encoding-type=url encodes keys, prefixes and markers and says so', async () => {
    const v1 = await client.list({ prefix: 'd ', 'encoding-type': 'url' } as never, {})
    expect(v1.objects.map((o) => o.name)).toEqual(['d%201%2B1%3D2%3F.txt'])
    const v2 = await client.listV2({ prefix: 'b/', delimiter: '/', 'encoding-type': 'url', 'max-keys': 3 } as never, {})
    expect(v2.objects.map((o) => decodeURIComponent(o.name))).toEqual(['b/1', 'b/2', 'b/\uFFFD'])
    const raw = parse((await signed('GET', 'listbucket', '', [['prefix', 'd '], ['encoding-type', 'url']])).text)
    expect(raw).toMatchObject({ ListBucketResult: { EncodingType: 'url', Prefix: 'd%20', Contents: { Key: 'd%201%2B1%3D2%3F.txt' } } })
  })

  it('answers XML with OSS headers; an empty prefix lists nothing', async () => {
    const reply = await signed('GET', 'listbucket', '', [['prefix', 'zzz']])
    expect(reply.status).toBe(200)
    expect(reply.headers['content-type']).toMatch(/^application\/xml/)
    expect(reply.headers['x-oss-request-id']).toMatch(/^[0-9A-F]{24}$/)
    expect(parse(reply.text)).toMatchObject({ ListBucketResult: { Name: 'listbucket', Prefix: 'zzz', MaxKeys: '100', IsTruncated: 'false' } })
  })
})

describe('ListParts and ListMultipartUploads with ali-oss', () => {
  it('lists parts in order with PartNumber, LastModified, ETag, HashCrc64ecma, Size, paged by max-parts', async () => {
    const { uploadId } = await client.initMultipartUpload('big/file.bin')
    const sizes = [100 * 1024, 100 * 1024 + 1, 7]
    for (const n of [3, 1, 2]) await client.uploadPart('big/file.bin', uploadId, n, Buffer.alloc(sizes[n - 1] as number, n), 0, sizes[n - 1] as number)
    const first = await client.listParts('big/file.bin', uploadId, { 'max-parts': 2 } as never, {})
    expect(first.isTruncated).toBe('true')
    expect(first.nextPartNumberMarker).toBe('2')
    expect(partsOf(first).map((p) => p.PartNumber)).toEqual(['1', '2'])
    expect(partsOf(first)[0]).toMatchObject({ Size: String(100 * 1024), ETag: expect.stringMatching(/^"[0-9A-F]{32}"$/), HashCrc64ecma: expect.stringMatching(/^\d+$/), LastModified: expect.stringMatching(/\.\d{3}Z$/) })
    const rest = await client.listParts('big/file.bin', uploadId, { 'max-parts': 2, 'part-number-marker': 2 } as never, {})
    expect(rest.isTruncated).toBe('false')
    expect(partsOf(rest).map((p) => p.PartNumber)).toEqual(['3'])
    // The C SDK completes from ListParts: its answer must build a valid CompleteMultipartUpload.
    const all = await client.listParts('big/file.bin', uploadId, {} as never, {})
    const done = await client.completeMultipartUpload('big/file.bin', uploadId, partsOf(all).map((p) => ({ number: Number(p.PartNumber), etag: p.ETag as string })))
    expect(done.res.status).toBe(200)
    const missing = await signed('GET', 'listbucket', 'big/file.bin', [['uploadId', uploadId]])
    expect([missing.status, xmlError(missing.text).Code]).toEqual([404, 'NoSuchUpload'])
  })

  it('lists uploads in progress by key, paged by max-uploads, with prefix and delimiter', async () => {
    const bucket = aliOssClient(sim, 'uploadsbucket')
    const ids: Record<string, string> = {}
    for (const k of ['u/b', 'u/a', 'v/c/1', 'w']) ids[k] = (await bucket.initMultipartUpload(k)).uploadId
    const p1 = await bucket.listUploads({ 'max-uploads': 2 }, {})
    expect(p1.uploads.map((u) => [u.name, u.uploadId])).toEqual([['u/a', ids['u/a']], ['u/b', ids['u/b']]])
    expect([p1.isTruncated, p1.nextKeyMarker, p1.nextUploadIdMarker]).toEqual([true, 'u/b', ids['u/b']])
    expect(p1.uploads[0]?.initiated).toMatch(/\.\d{3}Z$/)
    const p2 = await bucket.listUploads({ 'max-uploads': 2, 'key-marker': p1.nextKeyMarker, 'upload-id-marker': p1.nextUploadIdMarker }, {})
    expect(p2.uploads.map((u) => u.name)).toEqual(['v/c/1', 'w'])
    expect(p2.isTruncated).toBe(false)
    const grouped = parse((await signed('GET', 'uploadsbucket', '', [['uploads', ''], ['delimiter', '/']])).text)
    expect(grouped).toMatchObject({ ListMultipartUploadsResult: { Upload: { Key: 'w' }, CommonPrefixes: [{ Prefix: 'u/' }, { Prefix: 'v/' }] } })
  })
})

describe('HeadObject', () => {
  it('answers the stored headers and no body; a missing object is a 404 with no body', async () => {
    await client.put('head/me.txt', Buffer.from('hello'), { headers: { 'x-oss-meta-color': 'blue' }, mime: 'text/plain' } as never)
    const head = await client.head('head/me.txt')
    expect(head.status).toBe(200)
    expect(head.res.headers).toMatchObject({
      etag: '"5D41402ABC4B2A76B9719D911017C592"', 'content-length': '5', 'content-type': 'text/plain', 'x-oss-object-type': 'Normal',
      'x-oss-storage-class': 'Standard', 'x-oss-meta-color': 'blue', 'content-md5': 'XUFAKrxLKna5cZ2REBfFkg=='
    })
    const missing = await signed('HEAD', 'listbucket', 'head/none.txt', [])
    expect([missing.status, missing.body.length, missing.headers['content-length'] ?? '0']).toEqual([404, 0, '0'])
  })
})
