// Child process: a loopback key server. Serves PEMs by path, counts requests, answers `hits` over IPC.
import { createServer } from 'node:http'
import { boundLifetime, config } from './common.js'

const { routes, lifetimeMs } = config() // routes: { '/k.pem': { pem, delayMs } }
boundLifetime(lifetimeMs)

const hits = Object.create(null)
const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0]
  hits[path] = (hits[path] ?? 0) + 1
  const route = routes[path]
  if (route === undefined) { res.writeHead(404).end('not found'); return }
  const send = () => res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(route.pem)
  if (route.delayMs > 0) setTimeout(send, route.delayMs)
  else send()
})
server.keepAliveTimeout = 5000
server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, () => {
  process.send({ type: 'ready', port: server.address().port })
})
process.on('message', (m) => {
  if (m.type === 'hits') process.send({ type: 'hits', hits: { ...hits } })
  if (m.type === 'stop') server.close(() => process.exit(0))
})
