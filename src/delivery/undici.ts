// Importing undici installs its own Agent as the process's global fetch dispatcher when none is set yet
// (undici's lib/global.js); Node 20's fetch then runs through undici 7 and refuses requests it used to send.
// A library must not change its host app's fetch: touching a fetch global first loads Node's own fetch,
// which takes the slot with its own Agent, so undici finds it set and leaves it.
void globalThis.Headers
const undici = await import('undici')

export const Pool = undici.Pool
export type Pool = InstanceType<typeof undici.Pool>
export type { Dispatcher } from 'undici'
