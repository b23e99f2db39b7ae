// Child process: the load generator, apart from the servers it measures. Takes `run` tasks over IPC, one at a time.
import { Agent, request } from 'node:http'
import autocannon from 'autocannon'
import { boundLifetime, config } from './common.js'

boundLifetime(config().lifetimeMs)

async function cannon (cfg) {
  const result = await autocannon({
    url: `http://127.0.0.1:${cfg.port}${cfg.callback.path}`,
    method: 'POST',
    headers: cfg.callback.headers,
    body: cfg.callback.body,
    connections: cfg.connections,
    pipelining: 1,
    timeout: 10,
    ...(cfg.amount === undefined ? { duration: cfg.durationS } : { amount: cfg.amount })
  })
  return {
    requests: result.requests.total,
    reqPerSec: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationS: result.duration
  }
}

// Every callback at once, each on its own connection, as OSS would send a burst.
async function burst (cfg) {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity })
  const statuses = {}
  const body = Buffer.from(cfg.callback.body, 'latin1')
  const one = () => new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port: cfg.port,
      path: cfg.callback.path,
      method: 'POST',
      agent,
      headers: { ...cfg.callback.headers, 'content-length': body.length }
    }, (res) => {
      res.resume()
      res.on('end', () => { statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1; resolve() })
    })
    req.on('error', (err) => { statuses[err.code ?? 'error'] = (statuses[err.code ?? 'error'] ?? 0) + 1; resolve() })
    req.end(body)
  })
  const started = performance.now()
  await Promise.all(Array.from({ length: cfg.count }, one))
  const elapsedMs = performance.now() - started
  agent.destroy()
  return { count: cfg.count, allAnsweredMs: elapsedMs, statuses }
}

process.on('message', async (m) => {
  if (m.type !== 'run') return
  const result = m.task.mode === 'burst' ? await burst(m.task) : await cannon(m.task)
  process.send({ type: 'run', result })
})
process.send({ type: 'ready' })
