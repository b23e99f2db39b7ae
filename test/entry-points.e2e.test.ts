// End to end: runs against dist/ (built by the global setup) and in fresh child processes.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = new URL('..', import.meta.url).pathname
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string, default: string }>
  dependencies: Record<string, string>
  files: string[]
}
const entries = Object.entries(pkg.exports).filter(([, v]) => typeof v !== 'string') as Array<[string, { types: string, default: string }]>
const specifierOf = (key: string): string => key === '.' ? 'oss-callback' : `oss-callback/${key.slice(2)}`

/** Every module a fresh process loads for `import(specifier)`, as file URLs. */
function modulesLoadedBy (specifier: string): string[] {
  const out = execFileSync(process.execPath, [join(root, 'bench/import-probe.js'), specifier, '--modules'], { cwd: root, encoding: 'utf8', timeout: 30_000 })
  return (JSON.parse(out) as { modules: string[] }).modules
}

const packageOf = (url: string): string | undefined => {
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  return m?.[1]
}

describe('package entry points', () => {
  it('lists the eight entry points, each with types and a default that exist in dist/', () => {
    expect(entries.map(([k]) => k)).toEqual(['.', './fastify', './express', './web', './tickets', './server', './client', './sim'])
    for (const [, target] of entries) {
      expect(existsSync(join(root, target.types))).toBe(true)
      expect(existsSync(join(root, target.default))).toBe(true)
    }
  })

  it('the root entry exports the verifier only: at most 25 names, values and types together', () => {
    const program = ts.createProgram([join(root, 'dist/index.d.ts')], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true, noLib: true, types: [] })
    const checker = program.getTypeChecker()
    const source = program.getSourceFile(join(root, 'dist/index.d.ts'))
    const names = checker.getExportsOfModule(checker.getSymbolAtLocation(source as ts.SourceFile) as ts.Symbol).map((s) => s.name).sort()
    expect(names.length).toBeLessThanOrEqual(25)
    expect(names).toEqual(expect.arrayContaining(['createCallbackVerifier', 'verifyCallback', 'KeyProvider', 'isOssCallbackError', 'OssCallbackError', 'OssCallbackErrorCode', 'VerifiedCallback', 'CallbackRequest']))
    expect(names).not.toEqual(expect.arrayContaining(['ossCallback']))
  })

  it('the root entry, imported cold, loads no framework, OSS SDK, Redis, metrics, XML, node-forge or database driver', () => {
    const modules = modulesLoadedBy('oss-callback')
    expect(modules).toContain(new URL('dist/receiver/verify.js', `file://${root}`).href)
    const packages = [...new Set(modules.map(packageOf).filter((p) => p !== undefined))].sort()
    for (const forbidden of ['fastify', 'ali-oss', 'ioredis', 'prom-client', 'fast-xml-parser', 'node-forge', 'pg', 'better-sqlite3', 'fastify-plugin', 'pino']) {
      expect(packages).not.toContain(forbidden)
    }
    expect(packages).toEqual(['@fastify/error'])
  })

  it('the express and web entries load no framework either', () => {
    for (const specifier of ['oss-callback/express', 'oss-callback/web']) {
      const packages = [...new Set(modulesLoadedBy(specifier).map(packageOf).filter((p) => p !== undefined))]
      expect(packages).toEqual(['@fastify/error'])
    }
  })

  it('the tickets entry loads no Redis client and no framework: ioredis loads with the first Redis store', () => {
    const packages = [...new Set(modulesLoadedBy('oss-callback/tickets').map(packageOf).filter((p) => p !== undefined))].sort()
    expect(packages).toEqual(['@fastify/error', 'fastify-plugin'])
  })

  // Importing undici installs its Agent as Node's global fetch dispatcher when nothing loaded Node's fetch
  // first; Node 20's fetch then refused an explicit content-length header (UND_ERR_INVALID_ARG). The server
  // entry happened to load Node's fetch earlier; the delivery module, loaded first, did not.
  it('regression: loading the delivery sender first leaves the app\'s global fetch as it was', () => {
    const script = `
      import { createServer } from 'node:http'
      await import('./dist/delivery/send.js')
      await import('oss-callback/server')
      const server = createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1')
      await new Promise((resolve) => server.once('listening', resolve))
      const res = await fetch('http://127.0.0.1:' + server.address().port + '/', { method: 'POST', headers: { 'content-length': '2' }, body: 'hi' })
      console.log(JSON.stringify({ status: res.status, text: await res.text(), dispatcher: typeof globalThis[Symbol.for('undici.globalDispatcher.1')] }))
      server.close()`
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 })
    expect(JSON.parse(out)).toEqual({ status: 200, text: 'ok', dispatcher: 'object' })
  })

  it('every entry point imports in a fresh process', () => {
    const script = `for (const s of ${JSON.stringify(entries.map(([k]) => specifierOf(k)))}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error(s) }`
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, timeout: 60_000 })
  })

  it('dependencies hold only packages src/ imports', () => {
    const files: string[] = []
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name))
        else if (e.name.endsWith('.ts')) files.push(readFileSync(join(dir, e.name), 'utf8'))
      }
    }
    walk(join(root, 'src'))
    const text = files.join('\n')
    for (const dep of Object.keys(pkg.dependencies)) {
      const escaped = dep.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
      expect(new RegExp(`(from |import\\(|require\\()'${escaped}(/[^']*)?'`).test(text), dep).toBe(true)
    }
  })

  it('the published tarball has a LICENSE and no source map pointing at a file it lacks', () => {
    const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', timeout: 60_000 })) as Array<{ files: Array<{ path: string }> }>
    const paths = new Set((packed[0]?.files ?? []).map((f) => f.path))
    expect(paths.has('LICENSE')).toBe(true)
    const maps = [...paths].filter((p) => p.endsWith('.map'))
    expect(maps.length).toBeGreaterThan(0)
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(root, map), 'utf8')) as { sources: string[] }
      for (const s of sources) expect(paths.has(normalize(join(dirname(map), s))), `${map} -> ${s}`).toBe(true)
    }
  })
})
