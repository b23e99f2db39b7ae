// Child process: a fast app on 127.0.0.1 that answers every delivery 200 with a small JSON body.
import { createServer } from 'node:http'
import { boundLifetime, config } from './common.js'

const { lifetimeMs } = config()
boundLifetime(lifetimeMs ?? 600_000)

const reply = Buffer.from('{"Status":"OK"}')
let received = 0
const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    received++
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length }).end(reply)
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: server.address().port }))
process.on('message', (m) => {
  if (m?.type === 'stats') { const cpu = process.cpuUsage(); process.send({ type: 'stats', received, cpuMicros: cpu.user + cpu.system }) }
  if (m?.type === 'stop') server.close(() => process.exit(0))
})
