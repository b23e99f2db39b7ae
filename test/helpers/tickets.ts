import { buildCallbackBody, type SystemVariableName } from '../../src/protocol/body.js'
import type { IssuedTicket } from '../../src/tickets/issuer.js'
import { testKeyPair, signedCallback, type SignedCallback } from './keys.js'

/** What OSS would put in the callback of an upload made with `ticket`, unless overridden. */
export interface TicketUpload {
  bucket?: string
  object?: string
  size?: number
  /** The `x:ticket` value; `null` leaves it out. */
  ticketId?: string | null
}

/**
 * The callback OSS would send after a PostObject upload with this ticket: the body
 * built from the template the policy pins, as OSS builds it, signed with the test key.
 */
export function callbackForTicket (issued: IssuedTicket, keyUrl: string, upload: TicketUpload = {}): SignedCallback {
  const param = JSON.parse(Buffer.from(issued.fields.callback as string, 'base64').toString('utf8')) as { callbackUrl: string, callbackBody: string }
  const target = new URL(param.callbackUrl)
  const policy = JSON.parse(Buffer.from(issued.fields.policy as string, 'base64').toString('utf8')) as { conditions: unknown[] }
  const pinnedBucket = policy.conditions.find((c): c is { bucket: string } => typeof (c as { bucket?: unknown }).bucket === 'string')?.bucket
  const system: Partial<Record<SystemVariableName, string | number>> = {
    bucket: upload.bucket ?? pinnedBucket,
    object: upload.object ?? issued.key,
    etag: 'D41D8CD98F00B204E9800998ECF8427E',
    size: upload.size ?? 10,
    mimeType: 'image/png',
    crc64: '0',
    operation: 'PostObject',
    clientIp: '127.0.0.1',
    reqId: 'REQ1'
  }
  const ticketId = upload.ticketId === undefined ? issued.ticket : upload.ticketId
  const vars: Record<string, string> = ticketId === null ? {} : { 'x:ticket': ticketId }
  const body = buildCallbackBody(param.callbackBody, { system, vars }, 'form')
  return signedCallback({ url: target.pathname + target.search, body, keyUrl, privateKey: testKeyPair(512).privateKey })
}

/** The bearer token of {@link TICKET_SERVER_ENV}. */
export const TICKET_TOKEN = 'test-token-0123456789abcdef'

/** The standalone server's variables for upload tickets against a simulator's bucket on 127.0.0.1:8090. */
export const TICKET_SERVER_ENV: Readonly<Record<string, string>> = {
  OSS_CALLBACK_TICKET_TOKEN: TICKET_TOKEN,
  OSS_ACCESS_KEY_ID: 'ak',
  OSS_ACCESS_KEY_SECRET: 'sk',
  OSS_BUCKET: 'demo-bucket',
  OSS_ENDPOINT: 'http://127.0.0.1:8090',
  OSS_REGION: 'cn-hangzhou',
  OSS_CALLBACK_PUBLIC_URL: 'http://127.0.0.1:8080/oss/callback'
}
