// `node bench/profile-summary.js FILE.cpuprofile [N] [FILTER]`: self and inclusive time by function, from `node --cpu-prof`.
import { readFileSync } from 'node:fs'
process.stdout.on('error', () => process.exit(0))

const [file, topArg, filter] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: node bench/profile-summary.js FILE.cpuprofile [N] [FILTER]\n')
  process.exit(2)
}
const top = Number(topArg ?? 40)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

const selfTicks = new Map()
for (const id of profile.samples) selfTicks.set(id, (selfTicks.get(id) ?? 0) + 1)
const total = profile.samples.length
const label = (n) => {
  const f = n.callFrame
  const url = f.url.replace(/^file:\/\/.*?\/(node_modules|dist|bench)\//, '$1/')
  return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`
}

const self = new Map()
const inclusive = new Map()
for (const [id, ticks] of selfTicks) {
  const key = label(byId.get(id))
  self.set(key, (self.get(key) ?? 0) + ticks)
  const seen = new Set()
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = label(byId.get(cur))
    if (seen.has(k)) continue
    seen.add(k)
    inclusive.set(k, (inclusive.get(k) ?? 0) + ticks)
  }
}
const pct = (t) => (t / total * 100).toFixed(1).padStart(5) + ' %'
const print = (title, map) => {
  process.stdout.write(`\n${title} (${total} samples)\n`)
  const rows = [...map].filter(([k]) => filter === undefined || k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, top)
  for (const [k, t] of rows) process.stdout.write(`${pct(t)}  ${k}\n`)
}
print('self', self)
print('inclusive', inclusive)
