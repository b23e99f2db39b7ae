import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/process.js'

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }

const section = ((): string => {
  const start = readme.indexOf('\n## API and versioning\n')
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end === -1 ? undefined : end)
})()

/** The import paths package.json exports, as a consumer writes them. */
const entryPoints = Object.keys(pkg.exports).filter((k) => k !== './package.json').map((k) => k === '.' ? 'oss-callback' : `oss-callback/${k.slice(2)}`)
const sourceOf = (entry: string): string => join(ROOT, 'src', entry === 'oss-callback' ? 'index.ts' : `${entry.slice('oss-callback/'.length)}.ts`)

/** The names an entry file exports: its `export { … }` lists (types included) and its own declarations. */
function exportedNames (entry: string): Set<string> {
  const text = readFileSync(sourceOf(entry), 'utf8')
  const names = new Set<string>()
  for (const m of text.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const part of (m[1] as string).split(',')) {
      const name = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()?.trim()
      if (name !== undefined && name !== '') names.add(name)
    }
  }
  for (const m of text.matchAll(/export\s+(?:const|function|class|type|interface)\s+([A-Za-z_$][\w$]*)/g)) names.add(m[1] as string)
  if (/export\s+default\b/.test(text)) names.add('default')
  return names
}

const exportsOf = new Map(entryPoints.map((e) => [e, exportedNames(e)]))
const identifiers = (cell: string): string[] => [...cell.matchAll(/`([A-Za-z_$][\w$]*)`/g)].map((m) => m[1] as string)
const entryIn = (cell: string): string | undefined => [...cell.matchAll(/`(oss-callback(?:\/[a-z]+)?)`/g)].map((m) => m[1] as string)[0]
const rows = (header: string): string[][] => {
  const start = section.indexOf(header)
  expect(start).toBeGreaterThan(-1)
  const lines = section.slice(start).split('\n').slice(2)
  const table = lines.slice(0, lines.findIndex((l) => !l.startsWith('|')))
  return table.map((l) => l.split(' | ').map((c) => c.replace(/^\| |\s\|$/g, '')))
}

describe('the README\'s API and versioning section', () => {
  const entries = rows('| Entry point | What it holds |')
  const upgrade = rows('| 0.1: `import { … } from \'oss-callback\'` | 0.2 |')

  it('lists every entry point package.json exports, and no other', () => {
    expect(entries.map(([entry]) => entryIn(entry as string)).sort()).toEqual([...entryPoints].sort())
  })

  it.each(entries.map(([entry, names]) => ({ entry: entryIn(entry as string) as string, names: names as string })))('names only what $entry exports', ({ entry, names }) => {
    const exported = exportsOf.get(entry) as Set<string>
    const listed = identifiers(names)
    expect(listed.length).toBeGreaterThan(0)
    expect(listed.filter((n) => !exported.has(n))).toEqual([])
  })

  it('the upgrade table sends each old import where it is exported now, and "internal" names are exported by no entry point', () => {
    expect(upgrade.length).toBeGreaterThanOrEqual(6)
    const everywhere = new Set([...exportsOf.values()].flatMap((s) => [...s]))
    for (const [before = '', after = ''] of upgrade) {
      const entry = entryIn(after)
      const renamed = identifiers(after).filter((n) => n !== entry)
      if (entry === undefined) {
        expect(after).toMatch(/^internal/)
        expect(identifiers(before).filter((n) => everywhere.has(n))).toEqual([])
      } else if (renamed.length > 0) {
        expect(renamed.filter((n) => !(exportsOf.get(entry) as Set<string>).has(n))).toEqual([])
        expect(identifiers(before).filter((n) => everywhere.has(n))).toEqual([])
      } else {
        expect(identifiers(before).filter((n) => !(exportsOf.get(entry) as Set<string>).has(n))).toEqual([])
      }
    }
  })
})
