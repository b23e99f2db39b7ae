import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppDependencies } from './app.js'
import type { ServerConfig } from './config.js'

/** How long in-flight callbacks get to finish after SIGTERM or SIGINT, in ms. */
export const SHUTDOWN_GRACE_MS = 10_000

/**
 * Builds the receiver, listens, and closes gracefully on SIGTERM/SIGINT:
 * the listener stops, in-flight callbacks finish, then the process exits 0.
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
  closeWithGrace({ delay: SHUTDOWN_GRACE_MS, logger: { error: (m: string) => app.log.error(m) } }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  return app
}
