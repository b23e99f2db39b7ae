import { invalidOption } from '../errors.js'
import type { PostgresStoreOptions } from './postgres.js'
import type { EventStore, StoreOptions } from './store.js'

/**
 * Opens the event store a URL names: `sqlite:<path>` (relative to the working directory) or
 * `postgres://…` (also `postgresql://`). Each store module, and its driver, loads only when
 * named. Throws `OSS_CB_ERR_INVALID_OPTION` for another URL, `OSS_CB_ERR_STORE_UNUSABLE` (one
 * line) when the store cannot be opened.
 */
export async function openEventStore (url: string, options: StoreOptions & PostgresStoreOptions = {}): Promise<EventStore> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length)
    if (path === '') throw invalidOption('the database URL sqlite: needs a path, such as sqlite:./data/oss-callback.sqlite')
    const { openSqliteStore } = await import('./sqlite.js')
    return await openSqliteStore(path, options)
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { openPostgresStore } = await import('./postgres.js')
    return await openPostgresStore(url, options)
  }
  throw invalidOption('the database URL must start with sqlite: or postgres://')
}
