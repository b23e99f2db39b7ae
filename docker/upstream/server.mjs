// An example upstream app for oss-callback's forward mode, with no dependencies so that
// it runs on a stock Node image. It checks the Standard Webhooks signature by hand to show
// what the libraries do; in your app, prefer a library (docs/forward.md).
//
//   OSS_CALLBACK_FORWARD_SECRET=whsec_... PORT=3000 node server.mjs
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer } from 'node:http'

const secret = process.env.OSS_CALLBACK_FORWARD_SECRET ?? ''
if (!secret.startsWith('whsec_')) {
  console.error('upstream: set OSS_CALLBACK_FORWARD_SECRET to the same whsec_ secret as the receiver')
  process.exit(1)
}
const key = Buffer.from(secret.slice('whsec_'.length), 'base64')
const TOLERANCE_S = 5 * 60
const seen = new Map() // webhook-id -> when first seen (ms); refuses replays within the tolerance

/** The parsed envelope, or a reason it is refused. */
function verify (headers, body) {
  const id = headers['webhook-id']
  const timestamp = headers['webhook-timestamp']
  const signatures = headers['webhook-signature']
  if (!id || !timestamp || !signatures) return { error: 'missing webhook headers' }
  const ts = Number(timestamp)
  if (!Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > TOLERANCE_S) return { error: 'timestamp outside the tolerance' }
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest()
  const ok = signatures.split(' ').some((s) => {
    const [version, value] = s.split(',')
    const given = Buffer.from(value ?? '', 'base64')
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected)
  })
  if (!ok) return { error: 'signature does not match' }
  for (const [k, at] of seen) if (Date.now() - at > TOLERANCE_S * 1000) seen.delete(k)
  if (seen.has(id)) return { error: 'replayed webhook-id' }
  seen.set(id, Date.now())
  return { envelope: JSON.parse(body.toString('utf8')) }
}

const server = createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const { envelope, error } = req.method === 'POST' ? verify(req.headers, Buffer.concat(chunks)) : { error: 'POST only' }
    if (error !== undefined) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error }))
      return
    }
    const { system, vars } = envelope.data
    // Your work goes here: record the upload, idempotently (keyed by system.object or webhook-id).
    console.log(JSON.stringify({ msg: 'upload', object: system.object, size: system.size, vars, ossRequestId: envelope.data.ossRequestId }))
    // This JSON goes back through the receiver and OSS to the uploader, byte for byte.
    const reply = JSON.stringify({ Status: 'OK', object: system.object, size: system.size, vars })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply) }).end(reply)
  })
})

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '0.0.0.0', () => {
  console.log(JSON.stringify({ msg: 'upstream listening', port: server.address().port }))
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
