import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { startPostgresServer, type PostgresServer } from './postgres-server.js'

export interface EventStoreFixture {
  /** A fresh, empty store URL of each kind: a new SQLite file, a new PostgreSQL database. */
  dialects: { sqlite: () => Promise<string>, postgres: () => Promise<string> }
  /** The file's temporary folder (SQLite files and anything else the tests write). */
  dir: () => string
  /** The file's own PostgreSQL cluster (pause and resume it for outages). */
  postgres: () => PostgresServer
}

/**
 * For a test file that runs against both stores: a temporary folder and a PostgreSQL cluster of its own,
 * started before the file's tests and stopped (by its pid) and deleted after them.
 */
export function useEventStores (prefix: string): EventStoreFixture {
  let dir: string | undefined
  let postgres: PostgresServer | undefined
  let files = 0
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix))
    postgres = await startPostgresServer()
  }, 60_000)
  afterAll(async () => {
    await postgres?.stop()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  }, 60_000)
  const folder = (): string => dir as string
  const server = (): PostgresServer => postgres as PostgresServer
  return {
    dialects: {
      sqlite: async () => `sqlite:${join(folder(), `store-${++files}.sqlite`)}`,
      postgres: async () => await server().createDatabase()
    },
    dir: folder,
    postgres: server
  }
}
