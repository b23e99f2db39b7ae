import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppDependencies } from './app.js'
import type { ServerConfig } from './config.js'

/** How long in-flight callbacks get to finish after SIGTERM or SIGINT, in ms. */
export const SHUTDOWN_GRACE_MS = 10_000
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const

/**
 * Builds the receiver, listens, and closes gracefully on SIGTERM/SIGINT:
 * the listener stops, in-flight callbacks finish, then the process exits 0. A second
 * signal is logged and changes nothing: the same grace period still runs.
 * A failed listen (port taken, address not available) closes the app and rejects.
 */
export async function serve (config: ServerConfig, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const app = await buildApp(config, deps)
  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    // Before the graceful-close handlers exist: with them, a failed listen closed "gracefully" and exited 0.
    await app.close()
    throw err
  }
  // close-with-grace exits at once on a second signal, dropping callbacks in flight (a second Ctrl-C, or an
  // orchestrator that repeats SIGTERM): it is given no SIGTERM/SIGINT, which are handled here instead.
  let stopping = false
  const grace = closeWithGrace({ delay: SHUTDOWN_GRACE_MS, logger: { error: (m: string) => app.log.error(m) }, skip: [...STOP_SIGNALS] }, async ({ err }) => {
    stopping = true
    if (err !== undefined) app.log.error({ err }, 'closing after an error')
    await app.close()
  })
  const onStopSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      app.log.warn({ signal }, 'already shutting down: still waiting for callbacks in flight')
      return
    }
    stopping = true
    app.log.info({ signal }, 'shutting down')
    void grace.close()
  }
  for (const signal of STOP_SIGNALS) process.on(signal, onStopSignal)
  return app
}
