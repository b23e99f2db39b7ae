// Child process: `node bench/import-probe.js <specifier> [--modules]`. Imports the specifier cold and
// prints JSON: `ms` from `import()` to its resolution, and with --modules every module it loaded
// (ESM URLs seen by a resolve hook, plus CommonJS files in require.cache). The hook slows the import,
// so the bench times runs without --modules and counts modules in a separate run.
import { createRequire, register } from 'node:module'
import { MessageChannel } from 'node:worker_threads'
import { pathToFileURL } from 'node:url'

const [specifier, flag] = process.argv.slice(2)
const require = createRequire(import.meta.url)
const SENTINEL = 'data:text/javascript,export default 1'

if (flag === '--modules') {
  const { port1, port2 } = new MessageChannel()
  const seen = new Set()
  let sentinelSeen
  const sentinel = new Promise((resolve) => { sentinelSeen = resolve })
  port1.on('message', (url) => { if (url === SENTINEL) sentinelSeen(); else seen.add(url) })
  register('./import-hooks.js', { parentURL: import.meta.url, data: { port: port2 }, transferList: [port2] })
  const before = new Set(Object.keys(require.cache))
  await import(specifier)
  // Messages arrive in order: once the sentinel's resolution is reported, every earlier one has been.
  await import(SENTINEL)
  await sentinel
  port1.close()
  for (const file of Object.keys(require.cache)) if (!before.has(file)) seen.add(pathToFileURL(file).href)
  const modules = [...seen].filter((u) => u.startsWith('file:') && u !== import.meta.url).sort()
  process.stdout.write(JSON.stringify({ specifier, modules }) + '\n')
} else {
  const started = performance.now()
  await import(specifier)
  const ms = performance.now() - started
  process.stdout.write(JSON.stringify({ specifier, ms }) + '\n')
}
