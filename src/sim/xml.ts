import { XMLBuilder, XMLParser } from 'fast-xml-parser'

const builder = new XMLBuilder({ processEntities: true, suppressEmptyNode: false })
const parser = new XMLParser({
  parseTagValue: false,
  processEntities: true,
  ignoreAttributes: true,
  isArray: (name) => name === 'Part'
})

const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

/** An XML document with the declaration OSS puts first. */
export function xmlDocument (root: string, content: Record<string, unknown>): string {
  return DECLARATION + String(builder.build({ [root]: content }))
}

/** What an OSS error reply says besides its status. */
export interface OssErrorBody {
  code: string
  message: string
  requestId: string
  hostId: string
  /** OSS's error "EC", where known. */
  ec?: string
  /** Extra elements OSS adds for some errors (`Key`, `StringToSign`, …). */
  extra?: Record<string, string>
}

/** `<Error><Code/><Message/><RequestId/><HostId/>…<EC/></Error>`, as OSS writes it. */
export function errorXml (e: OssErrorBody): string {
  return xmlDocument('Error', {
    Code: e.code,
    Message: e.message,
    RequestId: e.requestId,
    HostId: e.hostId,
    ...e.extra,
    ...(e.ec === undefined ? {} : { EC: e.ec })
  })
}

/** One `<Part>` of a CompleteMultipartUpload body. */
export interface CompletePart {
  partNumber: number
  /** Upper-case hex, quotes removed. */
  etag: string
}

/**
 * Reads a CompleteMultipartUpload body. Returns `undefined` when it is not the
 * expected XML (OSS answers MalformedXML). ETags come quoted, often as `&quot;`.
 */
export function parseCompleteMultipartUpload (body: Buffer): CompletePart[] | undefined {
  let doc: unknown
  try {
    doc = parser.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  const root = (doc as { CompleteMultipartUpload?: { Part?: unknown } } | undefined)?.CompleteMultipartUpload
  if (root === undefined || root === null || typeof root !== 'object' || !Array.isArray(root.Part)) return undefined
  const parts: CompletePart[] = []
  for (const p of root.Part as Array<{ PartNumber?: unknown, ETag?: unknown }>) {
    if (typeof p?.PartNumber !== 'string' || typeof p.ETag !== 'string' || !/^\d{1,5}$/.test(p.PartNumber.trim())) return undefined
    parts.push({ partNumber: Number(p.PartNumber.trim()), etag: p.ETag.trim().replace(/^"|"$/g, '').toUpperCase() })
  }
  return parts
}
