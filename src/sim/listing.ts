import { checkBucket, encodingOf, OWNER_ID, queryGet, queryInteger, quotedEtag, xmlTime, type SimContext, type SimRequest } from './context.js'
import type { KeyView } from './key-index.js'
import { OSS_ERRORS } from './oss-error.js'
import type { ObjectSummary } from './store.js'
import { xmlDocument } from './xml.js'

interface PageQuery {
  prefix: string
  delimiter: string
  /** List what comes after this key (a marker, start-after or continuation token). */
  after: string
  maxKeys: number
}

interface Page {
  keys: string[]
  prefixes: string[]
  truncated: boolean
  /** The last key or common prefix returned: where the next page starts. */
  last: string
}

/** The common prefix `key` rolls up into, if any. */
function commonPrefixOf (key: string, prefix: string, delimiter: string): string | undefined {
  if (delimiter === '' || !key.startsWith(prefix)) return undefined
  const d = key.indexOf(delimiter, prefix.length)
  return d < 0 ? undefined : key.slice(0, d + delimiter.length)
}

/** One page of keys, read from the sorted index by binary search: no copy, no sort. Runs within one tick. */
function pageOf (index: KeyView, q: PageQuery): Page {
  let i = index.seek(q.prefix, true)
  if (q.after !== '') {
    i = Math.max(i, index.seek(q.after, false))
    // A marker that is a common prefix (the previous page's last entry) covers every key under it.
    const rolled = commonPrefixOf(q.after, q.prefix, q.delimiter)
    if (rolled !== undefined) i = index.skipPrefix(i, rolled)
  }
  const keys: string[] = []
  const prefixes: string[] = []
  let last = q.after
  while (i < index.size && keys.length + prefixes.length < q.maxKeys) {
    const key = index.at(i)
    if (!key.startsWith(q.prefix)) break
    const common = commonPrefixOf(key, q.prefix, q.delimiter)
    if (common !== undefined) {
      prefixes.push(common)
      last = common
      i = index.skipPrefix(i, common)
      continue
    }
    keys.push(key)
    last = key
    i++
  }
  const truncated = i < index.size && index.at(i).startsWith(q.prefix)
  return { keys, prefixes, truncated, last }
}

async function summaries (ctx: SimContext, bucket: string, keys: string[]): Promise<ObjectSummary[]> {
  const found = await Promise.all(keys.map(async (k) => await ctx.store.summary(bucket, k)))
  return found.filter((s): s is ObjectSummary => s !== undefined)
}

const OWNER = { ID: OWNER_ID, DisplayName: OWNER_ID }

function contents (list: ObjectSummary[], encode: (s: string) => string, owner: boolean): Array<Record<string, unknown>> {
  return list.map((s) => ({
    Key: encode(s.key),
    LastModified: xmlTime(s.lastModified),
    ETag: quotedEtag(s.etag),
    Type: s.objectType,
    Size: s.size,
    StorageClass: 'Standard',
    ...(owner ? { Owner: OWNER } : {})
  }))
}

function sendList (r: SimRequest, content: Record<string, unknown>): unknown {
  return r.reply.code(200).type('application/xml').send(xmlDocument('ListBucketResult', content))
}

// The continuation token is opaque to clients; inside it is the key or prefix the page ended with.
function encodeToken (last: string): string {
  return Buffer.from(`v1:${last}`, 'utf8').toString('base64url')
}

function decodeToken (token: string): string {
  const text = /^[A-Za-z0-9_-]+$/.test(token) ? Buffer.from(token, 'base64url').toString('utf8') : ''
  if (!text.startsWith('v1:')) throw OSS_ERRORS.invalidArgument('The continuation token provided is incorrect.')
  return text.slice(3)
}

/** ListObjects (V1) and, with `list-type=2`, ListObjectsV2. */
export async function listObjects (ctx: SimContext, r: SimRequest): Promise<unknown> {
  const t = r.target
  const bucket = checkBucket(t)
  const listType = queryGet(t, 'list-type')
  if (listType !== undefined && listType !== '2') throw OSS_ERRORS.invalidArgument('The list-type must be 2.')
  const encode = encodingOf(t)
  const prefix = queryGet(t, 'prefix') ?? ''
  const delimiter = queryGet(t, 'delimiter') ?? ''
  const maxKeys = queryInteger(t, 'max-keys', 1, 1000, 100)
  const encoding = encode.url ? { EncodingType: 'url' } : {}
  const index = await ctx.store.keys(bucket)
  if (listType === undefined) {
    const marker = queryGet(t, 'marker') ?? ''
    const page = pageOf(index, { prefix, delimiter, after: marker, maxKeys })
    return sendList(r, {
      Name: bucket,
      Prefix: encode(prefix),
      Marker: encode(marker),
      MaxKeys: maxKeys,
      Delimiter: encode(delimiter),
      ...encoding,
      IsTruncated: page.truncated,
      ...(page.truncated ? { NextMarker: encode(page.last) } : {}),
      ...(page.keys.length === 0 ? {} : { Contents: contents(await summaries(ctx, bucket, page.keys), encode, true) }),
      ...(page.prefixes.length === 0 ? {} : { CommonPrefixes: page.prefixes.map((p) => ({ Prefix: encode(p) })) })
    })
  }
  const token = queryGet(t, 'continuation-token')
  const startAfter = queryGet(t, 'start-after')
  const after = token !== undefined && token !== '' ? decodeToken(token) : (startAfter ?? '')
  const fetchOwner = (queryGet(t, 'fetch-owner') ?? '').toLowerCase() === 'true'
  const page = pageOf(index, { prefix, delimiter, after, maxKeys })
  return sendList(r, {
    Name: bucket,
    Prefix: encode(prefix),
    ...(startAfter === undefined ? {} : { StartAfter: encode(startAfter) }),
    ...(token === undefined ? {} : { ContinuationToken: token }),
    MaxKeys: maxKeys,
    Delimiter: encode(delimiter),
    ...encoding,
    IsTruncated: page.truncated,
    ...(page.truncated ? { NextContinuationToken: encodeToken(page.last) } : {}),
    KeyCount: page.keys.length + page.prefixes.length,
    ...(page.keys.length === 0 ? {} : { Contents: contents(await summaries(ctx, bucket, page.keys), encode, fetchOwner) }),
    ...(page.prefixes.length === 0 ? {} : { CommonPrefixes: page.prefixes.map((p) => ({ Prefix: encode(p) })) })
  })
}
