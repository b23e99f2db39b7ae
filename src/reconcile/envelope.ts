import { eventId } from '../events/store.js'

/** The `type` of an event reconciliation records: an object in the bucket whose callback the log never saw. */
export const UNCONFIRMED_EVENT_TYPE = 'oss.object.unconfirmed'

/** What HeadObject says of an object, as `data.system` of an unconfirmed event carries it. */
export interface UnconfirmedSystemFields {
  bucket: string
  object: string
  /** Upper-case hex, no quotes (as in a callback's `${etag}`). */
  etag: string
  size: number
  mimeType: string | null
  /** Never known without a callback; present so the key is where a callback's is. */
  imageInfo: Record<string, never>
  /** CRC-64/XZ as an unsigned decimal string, or null when OSS sent none. */
  crc64: string | null
  /** Last-Modified, ISO 8601 in UTC. */
  lastModified: string
  /** The object's `x-oss-meta-*` headers, lower-case names with their prefix. */
  meta: Record<string, string>
}

/**
 * The envelope of an `oss.object.unconfirmed` event: the forward envelope's shape (every `data`
 * key present), so apps that read `data` do not break; `type` tells it apart. Nothing here was
 * signed by OSS: there was no callback, so no key, path, body or variables.
 */
export interface UnconfirmedEnvelope {
  type: typeof UNCONFIRMED_EVENT_TYPE
  /** When reconciliation recorded it, ISO 8601 in UTC. */
  timestamp: string
  data: {
    ossRequestId: null
    keyUrl: null
    keySource: null
    path: null
    query: null
    bodyType: null
    system: UnconfirmedSystemFields
    vars: Record<string, never>
    fields: Record<string, never>
    rawBodyBase64: null
  }
}

/** ETags compared as OSS callbacks write them: no quotes, upper case. */
export function normalizeEtag (etag: string): string {
  return etag.replace(/^(W\/)?"|"$/g, '').toUpperCase()
}

/**
 * The id of the unconfirmed event of one object version: the same bucket, key and ETag give the
 * same id, so a second sweep records nothing new. Derived by {@link eventId} with this type as its
 * path, which no callback's path can be (those start with `/`), so it never equals a callback's id.
 */
export function unconfirmedEventId (bucket: string, key: string, etag: string): string {
  return eventId({ path: UNCONFIRMED_EVENT_TYPE, query: bucket, body: Buffer.from(key), requestId: normalizeEtag(etag) })
}

/** The envelope for an object, from its HeadObject facts. */
export function unconfirmedEnvelope (system: UnconfirmedSystemFields, recordedAt: number): UnconfirmedEnvelope {
  return {
    type: UNCONFIRMED_EVENT_TYPE,
    timestamp: new Date(recordedAt).toISOString(),
    data: {
      ossRequestId: null,
      keyUrl: null,
      keySource: null,
      path: null,
      query: null,
      bodyType: null,
      system,
      vars: {},
      fields: {},
      rawBodyBase64: null
    }
  }
}
