// The cost of each entry point to a consumer: cold import time and module count (bench/import-probe.js in fresh
// processes), and the size of `npm install oss-callback` from the packed tarball with dev dependencies omitted.
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = new URL('..', import.meta.url).pathname
const probe = new URL('./import-probe.js', import.meta.url).pathname

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function probeOnce (specifier, modules) {
  const { stdout } = await run(process.execPath, [probe, specifier, ...(modules ? ['--modules'] : [])], { cwd: root, timeout: 60_000 })
  return JSON.parse(stdout)
}

/** Each entry point: median cold import time over `runs` fresh processes, and the modules it loads. */
export async function entryImportCosts (specifiers, runs) {
  const rows = []
  for (const specifier of specifiers) {
    const times = []
    // One at a time: parallel processes would compete for the same cores.
    for (let i = 0; i < runs; i++) times.push((await probeOnce(specifier, false)).ms)
    const { modules } = await probeOnce(specifier, true)
    const packages = new Set(modules.map((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1]).filter((p) => p !== undefined))
    rows.push({
      specifier,
      medianMs: Math.round(median(times) * 10) / 10,
      minMs: Math.round(Math.min(...times) * 10) / 10,
      maxMs: Math.round(Math.max(...times) * 10) / 10,
      runs,
      modules: modules.length,
      packages: [...packages].sort()
    })
  }
  return rows
}

async function dirBytes (dir) {
  let total = 0
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += await dirBytes(p)
    else if (e.isFile()) total += (await stat(p)).size
  }
  return total
}

const cli = new URL('../dist/cli.js', import.meta.url).pathname
const hook = new URL('./cli-help-hook.js', import.meta.url).pathname

/** `oss-callback <command> --help`: median time in the program after Node's start, over `runs` fresh processes. */
export async function cliHelpCosts (commands, runs) {
  const rows = []
  for (const command of commands) {
    const args = command === '' ? ['--help'] : [command, '--help']
    const times = []
    for (let i = 0; i < runs; i++) {
      const { stderr } = await run(process.execPath, ['--import', hook, cli, ...args], { cwd: root, timeout: 60_000 })
      times.push(Number(/cli-ms ([\d.]+)/.exec(stderr)?.[1]))
    }
    rows.push({ command: `oss-callback ${args.join(' ')}`, medianMs: Math.round(median(times) * 10) / 10, maxMs: Math.round(Math.max(...times) * 10) / 10, runs })
  }
  return rows
}

/** Packs the package, installs the tarball into an empty project with `--omit=dev`, and measures node_modules. */
export async function installSize () {
  const dir = await mkdtemp(join(tmpdir(), 'oss-callback-install-'))
  try {
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, timeout: 120_000 })
    const [packed] = JSON.parse(stdout)
    const consumer = join(dir, 'consumer')
    await run('mkdir', [consumer])
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
    await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(dir, packed.filename)], { cwd: consumer, timeout: 300_000 })
    const { stdout: ls } = await run('npm', ['ls', '--all', '--parseable', '--omit=dev'], { cwd: consumer, timeout: 60_000, maxBuffer: 16 * 2 ** 20 })
    // The first line is the consumer itself.
    const packages = new Set(ls.trim().split('\n').slice(1)).size
    return {
      tarballBytes: packed.size,
      unpackedBytes: packed.unpackedSize,
      packages,
      nodeModulesBytes: await dirBytes(join(consumer, 'node_modules'))
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
