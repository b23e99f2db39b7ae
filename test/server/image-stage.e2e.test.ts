// No Docker engine runs in CI, so this reproduces the Dockerfile's final stage by hand:
// it reads the Dockerfile, builds as the build stage does, copies exactly what the final
// stage copies into a temporary folder, installs as it does (offline, from the npm cache),
// starts the image's CMD, and probes it like an operator would. A change to the Dockerfile
// changes (or breaks) this test.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { docCallback } from '../helpers/fixtures.js'
import { startPostgresServer } from '../helpers/postgres-server.js'

const run = promisify(execFile)
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

interface Instruction { op: string, args: string }
interface Stage { name: string | undefined, instructions: Instruction[] }

/** Splits a Dockerfile into stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile (text: string): Stage[] {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  const stages: Stage[] = []
  for (const line of lines) {
    const m = /^(\S+)\s+(.*)$/.exec(line)
    if (m === null) continue
    const op = (m[1] as string).toUpperCase()
    const args = (m[2] as string).trim()
    if (op === 'FROM') {
      stages.push({ name: /\sAS\s+(\S+)$/i.exec(args)?.[1], instructions: [] })
      continue
    }
    stages.at(-1)?.instructions.push({ op, args })
  }
  return stages
}

/** `COPY [--flag=value ...] src... dest` as flags, sources and destination. */
function parseCopy (args: string): { from: string | undefined, sources: string[], dest: string } {
  const words = args.split(/\s+/)
  const flags = words.filter((w) => w.startsWith('--'))
  const paths = words.filter((w) => !w.startsWith('--'))
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length)
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1) as string }
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const stages = parseDockerfile(dockerfile)
const buildStage = stages.find((s) => s.name === 'build')
const finalStage = stages.at(-1) as Stage
const of = (stage: Stage | undefined, op: string): Instruction[] => stage?.instructions.filter((i) => i.op === op) ?? []

describe('the Dockerfile', () => {
  it('has a build stage that copies the sources before it builds, and a separate final stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    expect(buildStage).toBeDefined()
    const steps = (buildStage as Stage).instructions.map((i) => `${i.op} ${i.args}`)
    const copySrc = steps.findIndex((s) => /^COPY .*\bsrc\b/.test(s))
    const build = steps.findIndex((s) => s === 'RUN npm run build')
    expect(copySrc).toBeGreaterThan(-1)
    expect(build).toBeGreaterThan(copySrc)
    expect(finalStage).not.toBe(buildStage)
  })

  it('runs the final stage as a non-root user, exec-form CMD with source maps, and a node-based HEALTHCHECK', () => {
    expect(of(finalStage, 'USER').map((i) => i.args)).toEqual(['node'])
    expect(JSON.parse(of(finalStage, 'CMD')[0]?.args ?? 'null')).toEqual(['node', '--enable-source-maps', 'dist/cli.js', 'serve'])
    const health = of(finalStage, 'HEALTHCHECK')[0]?.args ?? ''
    expect(health).toMatch(/\bCMD \["node", "-e", /)
    expect(health).toContain('/healthz')
    expect(of(finalStage, 'RUN').some((i) => i.args.includes('npm ci --omit=dev --ignore-scripts'))).toBe(true)
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:2[02]-[a-z]*-?slim$/m)
  })

  it('sends the build context only what the stages copy (.dockerignore is an allowlist)', () => {
    const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    expect(rules[0]).toBe('*')
    const allowed = rules.filter((r) => r.startsWith('!')).map((r) => r.slice(1).replace(/\/$/, ''))
    const copied = stages.flatMap((s) => of(s, 'COPY')).map((i) => parseCopy(i.args)).filter((c) => c.from === undefined).flatMap((c) => c.sources)
    expect(new Set(copied)).toEqual(new Set(allowed))
  })
})

describe('the final image stage, reproduced by hand', () => {
  let work: string
  let app: string
  let server: ChildProcess | undefined
  let base = ''
  let logs = ''
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'oss-callback-image-'))
    // The build stage: its WORKDIR is the repository root here; compile into a folder of its own.
    const buildWorkdir = of(buildStage, 'WORKDIR')[0]?.args as string
    const buildOut = join(work, 'build')
    await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(buildOut, 'dist')], { cwd: ROOT })

    app = join(work, 'app')
    const workdir = of(finalStage, 'WORKDIR')[0]?.args as string
    expect(workdir).toBe('/app')
    const afterInstall: Array<[string, string]> = []
    for (const { from, sources, dest } of of(finalStage, 'COPY').map((i) => parseCopy(i.args))) {
      for (const source of sources) {
        let origin: string
        if (from === undefined) {
          origin = join(ROOT, source)
        } else {
          expect(from).toBe('build')
          // A path inside the build stage, mapped onto this reproduction of it.
          const inside = relative(buildWorkdir, source)
          expect(inside.startsWith('..')).toBe(false)
          // The build stage's node_modules is the repository's: npm ci built the driver here as the stage does.
          origin = inside.startsWith('node_modules/') ? join(ROOT, inside) : join(buildOut, inside)
        }
        const target = dest.endsWith('/') || sources.length > 1 ? join(app, dest, source.split('/').at(-1) as string) : join(app, dest)
        // The Dockerfile copies modules in after its npm ci (which empties node_modules): so does this, below.
        if (target.startsWith(join(app, 'node_modules'))) afterInstall.push([origin, target])
        else cpSync(origin, target, { recursive: true })
      }
    }

    env = { PATH: process.env.PATH, HOME: process.env.HOME }
    for (const { args } of of(finalStage, 'ENV')) {
      for (const m of args.matchAll(/(\w+)=(\S*)/g)) env[m[1] as string] = m[2]
    }
    // The install, as the Dockerfile runs it, but from the npm cache only: tests never reach the network.
    const install = of(finalStage, 'RUN').map((i) => i.args).find((a) => a.includes('npm ci')) as string
    const npmCi = (install.split('&&')[0] as string).trim().split(/\s+/)
    expect(npmCi.slice(0, 2)).toEqual(['npm', 'ci'])
    await run('npm', [...npmCi.slice(1), '--offline'], {
      cwd: app,
      env: { ...process.env, ...env, npm_config_update_notifier: 'false' },
      timeout: 180_000
    })
    for (const [origin, target] of afterInstall) cpSync(origin, target, { recursive: true })

    const cmd = JSON.parse(of(finalStage, 'CMD')[0]?.args as string) as string[]
    server = spawn(process.execPath, cmd.slice(1), {
      cwd: app,
      env: { ...env, HOST: '127.0.0.1', PORT: '0', OSS_CALLBACK_PATH: '/index.php', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    base = await new Promise<string>((resolveBase, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${logs}`)), 30_000)
      const onData = (chunk: Buffer): void => {
        logs += chunk.toString()
        const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(logs)
        if (m !== null) { clearTimeout(timer); resolveBase(m[1] as string) }
      }
      server?.stdout?.on('data', onData)
      server?.stderr?.on('data', onData)
      server?.on('exit', (code) => reject(new Error(`server exited ${String(code)}:\n${logs}`)))
    })
  }, 300_000)

  afterAll(async () => {
    if (server !== undefined && server.exitCode === null) {
      server.kill('SIGKILL')
      await new Promise((r) => server?.once('exit', r))
    }
    if (work !== undefined) rmSync(work, { recursive: true, force: true })
  })

  it('holds production dependencies only, and the compiled code with its source maps', () => {
    expect(existsSync(join(app, 'node_modules/fastify/package.json'))).toBe(true)
    expect(existsSync(join(app, 'node_modules/prom-client/package.json'))).toBe(true)
    expect(existsSync(join(app, 'node_modules/vitest'))).toBe(false)
    expect(existsSync(join(app, 'node_modules/typescript'))).toBe(false)
    expect(statSync(join(app, 'dist/cli.js')).isFile()).toBe(true)
    expect(existsSync(join(app, 'dist/cli.js.map'))).toBe(true)
    expect(existsSync(join(app, 'src'))).toBe(false)
  })

  it('answers /healthz, and the HEALTHCHECK command passes', async () => {
    const res = await fetch(`${base}/healthz`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok' })
    const health = of(finalStage, 'HEALTHCHECK')[0]?.args as string
    const probe = JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[]
    const port = new URL(base).port
    await expect(run(process.execPath, probe.slice(1), { env: { ...env, PORT: port } })).resolves.toBeDefined()
    // And it fails when nothing answers.
    await expect(run(process.execPath, probe.slice(1), { env: { ...env, PORT: '1' } })).rejects.toMatchObject({ code: 1 })
  })

  it('verifies the OSS documentation callback offline with the pinned key', async () => {
    const res = await fetch(`${base}${docCallback.path}${docCallback.query}`, {
      method: 'POST',
      headers: { authorization: docCallback.headers.authorization as string, 'x-oss-pub-key-url': docCallback.headers['x-oss-pub-key-url'] as string, 'content-type': docCallback.headers['content-type'] as string },
      body: docCallback.body
    })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('{"Status":"OK","bucket":"yonghu-test","imageInfo":{}}')
  })

  it('declares the event log volume, owned by the app\'s user, and opens a store there with the driver it copied', async () => {
    expect(of(finalStage, 'VOLUME').map((i) => i.args)).toEqual(['/data'])
    expect(of(finalStage, 'RUN').some((i) => /mkdir -p \/data && chown node:node \/data/.test(i.args))).toBe(true)
    expect(env.OSS_CALLBACK_DATABASE_URL).toBe('sqlite:/data/oss-callback.sqlite')
    expect(existsSync(join(app, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'))).toBe(true)
    // The volume, mapped into this reproduction: the image's code and driver create and reopen a store there.
    const url = (env.OSS_CALLBACK_DATABASE_URL as string).replace('sqlite:/data/', `sqlite:${join(work, 'data')}/`)
    const script = `const { openEventStore } = await import('./dist/events/open.js')
      const s = await openEventStore(${JSON.stringify(url)}); await s.append({ id: 'evt_image', type: 'oss.callback.verified', bucket: null, objectKey: null, etag: null, envelope: '{}' }); await s.close()
      const r = await openEventStore(${JSON.stringify(url)}, { create: false }); console.log(JSON.stringify((await r.stats()).counts)); await r.close()`
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env })
    expect(JSON.parse(stdout)).toMatchObject({ pending: 1 })
  })

  it('opens a PostgreSQL store with the pg driver it copied (a real server)', async () => {
    const postgres = await startPostgresServer()
    try {
      const url = await postgres.createDatabase()
      const script = `const { openEventStore } = await import('./dist/events/open.js')
        const s = await openEventStore(${JSON.stringify(url)}); await s.append({ id: 'evt_image_pg', type: 'oss.callback.verified', bucket: null, objectKey: null, etag: null, envelope: '{}' })
        console.log(JSON.stringify((await s.stats()).counts)); await s.close()`
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env })
      expect(JSON.parse(stdout)).toMatchObject({ pending: 1 })
    } finally {
      await postgres.stop()
    }
  }, 120_000)

  it('serves /metrics with the callback just counted, and stops cleanly on SIGTERM', async () => {
    const res = await fetch(`${base}/metrics`)
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toMatch(/^oss_callback_callbacks_total\{outcome="ok"\} 1$/m)
    expect(text).toMatch(/^oss_callback_key_lookups_total\{result="pinned"\} 1$/m)
    expect(text).toContain('process_cpu_user_seconds_total')

    const exited = new Promise<number | null>((r) => server?.once('exit', (code) => r(code)))
    server?.kill('SIGTERM')
    expect(await exited).toBe(0)
  })
})
