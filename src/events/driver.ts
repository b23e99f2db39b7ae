import { storeUnusable } from '../errors.js'

const INSTALL: Record<string, string> = {
  'better-sqlite3': 'npm install better-sqlite3@12',
  pg: 'npm install pg@8'
}

/**
 * Loads a database driver on first use: the drivers are optional peer dependencies, so a user
 * who only verifies never installs (or compiles) them. A missing one is refused with one line.
 */
export async function loadDriver<T> (name: string, scheme: string): Promise<T> {
  try {
    const mod = await import(name) as { default?: T }
    return (mod.default ?? mod) as T
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw storeUnusable(`${scheme} stores need the ${name} package, which is not installed: ${INSTALL[name] ?? `npm install ${name}`}`)
    }
    throw storeUnusable(`the ${name} package failed to load: ${firstLine(err)}`)
  }
}

/** The first line of an error's message, for one-line refusals. */
export function firstLine (err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return message.split('\n', 1)[0] ?? ''
}
