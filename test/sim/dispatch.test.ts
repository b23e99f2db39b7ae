import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/sim/server.js'
import { signedRequest, xmlError } from './stack.js'

let sim: Simulator
beforeAll(async () => { sim = await startSimulator({ port: 0 }) })
afterAll(async () => { await sim.close() })

const BUCKET = 'dispatchbucket'
const KEY = 'walk/object.txt'
const CONTENT = 'the stored object'

type Row = [method: string, query: Array<[string, string]>, headers?: Record<string, string>]
const q = (...names: string[]): Array<[string, string]> => names.map((n) => {
  const eq = n.indexOf('=')
  return eq < 0 ? [n, ''] : [n.slice(0, eq), n.slice(eq + 1)]
})

// OSS's documented object operations that share a path with GetObject, PutObject, DeleteObject and the multipart ones.
const OBJECT_ROWS: Row[] = [
  ['GET', q('acl')], ['PUT', q('acl'), { 'x-oss-object-acl': 'private' }],
  ['GET', q('tagging')], ['PUT', q('tagging')], ['DELETE', q('tagging')],
  ['GET', q('symlink')], ['PUT', q('symlink'), { 'x-oss-symlink-target': 'other.txt' }],
  ['POST', q('restore')],
  ['POST', q('append', 'position=0')], ['POST', q('append')],
  ['GET', q('x-oss-process=image/resize,w_10')], ['POST', q('x-oss-process')], ['POST', q('x-oss-process=csv/select')],
  ['GET', q('objectMeta')], ['HEAD', q('objectMeta')],
  ['GET', q('versionId=CAEQ')], ['DELETE', q('versionId=CAEQ')],
  ['PUT', [], { 'x-oss-copy-source': `/${BUCKET}/${KEY}` }],
  ['PUT', q('partNumber=1', 'uploadId=ABC'), { 'x-oss-copy-source': `/${BUCKET}/${KEY}` }],
  ['PUT', q('partNumber=1')], ['GET', q('partNumber=1')],
  ['GET', q('uploads')], ['PUT', q('uploads')], ['DELETE', q('uploads')], ['HEAD', q('uploads')],
  ['HEAD', q('uploadId=ABC')], ['POST', []], ['GET', q('stat')], ['GET', q('x-oss-async-process')]
]

// Bucket sub-resources; a bucket path must never list objects or accept a form for them.
const BUCKET_ROWS: Row[] = [
  ...['acl', 'cors', 'lifecycle', 'policy', 'versioning', 'referer', 'logging', 'website', 'encryption', 'worm', 'replication',
    'inventory', 'tagging', 'requestPayment', 'transferAcceleration', 'accessPoint', 'publicAccessBlock', 'httpsConfig']
    .flatMap((s): Row[] => [['GET', q(s)], ['PUT', q(s)], ['DELETE', q(s)]]),
  ['POST', q('worm')], ['POST', q('replication', 'comp=add')], ['GET', q('inventory', 'inventoryId=list1')],
  ['GET', q('versions')], ['GET', q('stat')], ['GET', q('location')], ['GET', q('bucketInfo')], ['GET', q('objectMeta')],
  ['GET', q('replicationLocation')], ['GET', q('replicationProgress')],
  ['POST', q('delete'), { 'content-type': 'application/xml' }], ['PUT', []], ['DELETE', []], ['POST', q('uploads')], ['DELETE', q('uploads')]
]

describe('dispatch: a request never falls through to another operation', () => {
  beforeAll(async () => {
    const put = await signedRequest(sim, 'PUT', BUCKET, KEY, [], { 'content-type': 'text/plain' }, CONTENT)
    expect(put.status).toBe(200)
  })

  for (const [scope, rows] of [['object', OBJECT_ROWS], ['bucket', BUCKET_ROWS]] as const) {
    for (const [method, query, headers] of rows) {
      const label = `${scope} ${method} ?${query.map(([k, v]) => (v === '' ? k : `${k}=${v}`)).join('&')}${headers === undefined ? '' : ` ${Object.keys(headers).join(',')}`}`
      it(`${label} answers 501 NotImplemented`, async () => {
        const reply = await signedRequest(sim, method, BUCKET, scope === 'object' ? KEY : '', query, headers ?? {})
        expect(reply.status).toBe(501)
        if (method === 'HEAD') {
          expect(reply.body.length).toBe(0)
        } else {
          expect(reply.headers['content-type']).toMatch(/^application\/xml/)
          expect(xmlError(reply.text)).toMatchObject({ Code: 'NotImplemented', RequestId: reply.headers['x-oss-request-id'] })
        }
      })
    }
  }

  it('implemented operations keep their own answers, and the object was never touched by the walk', async () => {
    const listParts = await signedRequest(sim, 'GET', BUCKET, KEY, q('uploadId=NOSUCHUPLOAD'))
    expect([listParts.status, xmlError(listParts.text).Code]).toEqual([404, 'NoSuchUpload'])
    const uploads = await signedRequest(sim, 'GET', BUCKET, '', q('uploads'))
    expect(uploads.status).toBe(200)
    expect(uploads.text).toContain('<ListMultipartUploadsResult>')
    const list = await signedRequest(sim, 'GET', BUCKET, '', [])
    expect(list.text).toContain(`<Key>${KEY}</Key>`)
    const get = await signedRequest(sim, 'GET', BUCKET, KEY, q('response-content-type=text/csv'))
    expect([get.status, get.text, get.headers['content-type']]).toEqual([200, CONTENT, 'text/csv'])
  })
})
