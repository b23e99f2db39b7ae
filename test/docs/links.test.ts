import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/process.js'

const README_MAX_BYTES = 15_360
const pages = ['README.md', 'SECURITY.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
const read = (page: string): string => readFileSync(join(ROOT, page), 'utf8')

/** The page's lines outside fenced code blocks, with inline code spans blanked (a `[a](b)` there is no link). */
function prose (text: string): string[] {
  let fence = false
  const out: string[] = []
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) { fence = !fence; continue }
    if (!fence) out.push(line.replace(/`[^`]*`/g, (m) => ' '.repeat(m.length)))
  }
  return out
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens, -1, -2 on repeats. */
function anchors (text: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  let fence = false
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) { fence = !fence; continue }
    const heading = fence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (heading === null) continue
    const base = (heading[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

interface Link { page: string, target: string }

function relativeLinks (page: string): Link[] {
  const links: Link[] = []
  for (const line of prose(read(page))) {
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] as string
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // https:, mailto:
      links.push({ page, target })
    }
  }
  return links
}

const links = pages.flatMap(relativeLinks)

describe('README.md and docs/', () => {
  it(`README.md is at most ${README_MAX_BYTES} bytes`, () => {
    expect(Buffer.byteLength(read('README.md'))).toBeLessThanOrEqual(README_MAX_BYTES)
  })

  it('link to one another, and every page of docs/ is linked from the README', () => {
    expect(links.length).toBeGreaterThan(30)
    const fromReadme = new Set(links.filter((l) => l.page === 'README.md').map((l) => l.target.split('#')[0]))
    for (const page of pages.filter((p) => p.startsWith('docs/'))) expect(fromReadme).toContain(page)
  })

  it.each(links)('$page: the relative link $target resolves to a file, and its anchor to a heading', ({ page, target }) => {
    const [path = '', anchor] = target.split('#') as [string, string | undefined]
    const file = path === '' ? join(ROOT, page) : join(ROOT, dirname(page), decodeURIComponent(path))
    expect(relative(ROOT, file).startsWith('..'), `${target} leaves the repository`).toBe(false)
    expect(existsSync(file), `${target}: no such file`).toBe(true)
    if (anchor === undefined) return
    expect(statSync(file).isFile() && file.endsWith('.md'), `${target}: an anchor into a file that is not Markdown`).toBe(true)
    expect([...anchors(readFileSync(file, 'utf8'))]).toContain(anchor)
  })
})
