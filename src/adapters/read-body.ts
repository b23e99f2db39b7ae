import type { IncomingMessage } from 'node:http'
import { ossError } from '../errors.js'

function declaredLength (value: string | null | undefined, limit: number): void {
  if (value === undefined || value === null || value === '') return
  const n = Number(value)
  if (Number.isSafeInteger(n) && n > limit) throw ossError('BODY_TOO_LARGE', 'content-length over the limit')
}

/**
 * True when something before us already read the request's body: the bytes OSS
 * signed are gone. body-parser 1.x (Express 4) marks `req._body`; body-parser 2.x
 * (Express 5) and others leave the stream read to its end.
 */
export function bodyAlreadyRead (req: IncomingMessage): boolean {
  return (req as { _body?: unknown })._body === true || req.readableEnded || req.readableDidRead
}

/** Reads a Node request's raw body, refusing it as soon as it passes `limit` bytes. */
export function readNodeBody (req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    try {
      declaredLength(req.headers['content-length'], limit)
    } catch (err) {
      reject(err)
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) {
        cleanup()
        req.pause()
        reject(ossError('BODY_TOO_LARGE', 'body over the limit'))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => { cleanup(); resolve(chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, size)) }
    const onError = (err: Error): void => { cleanup(); reject(ossError('BAD_REQUEST', 'request aborted', err)) }
    const onClose = (): void => { cleanup(); reject(ossError('BAD_REQUEST', 'request closed before its body ended')) }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

/** Reads a Fetch API request's raw body, refusing it as soon as it passes `limit` bytes. */
export async function readWebBody (request: Request, limit: number): Promise<Uint8Array> {
  declaredLength(request.headers.get('content-length'), limit)
  if (request.body === null) return new Uint8Array(0)
  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const step = await reader.read().catch((err: unknown) => { throw ossError('BAD_REQUEST', 'request body stream failed', err) })
    if (step.done) break
    size += step.value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => {})
      throw ossError('BODY_TOO_LARGE', 'body over the limit')
    }
    chunks.push(step.value)
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array
  const body = new Uint8Array(size)
  let at = 0
  for (const c of chunks) { body.set(c, at); at += c.byteLength }
  return body
}
