import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ROOT, runCli } from './helpers/process.js'

// Reports the packages loaded from node_modules (CommonJS cache) when the process exits.
const REPORT_LOADED = 'data:text/javascript,import M from "node:module";process.on("exit",()=>{process.stderr.write("\\nLOADED "+JSON.stringify([...new Set(Object.keys(M._cache).filter(k=>k.includes("node_modules")).map(k=>k.split("node_modules/").pop().split("/").slice(0,2).join("/")))]))})'
const HEAVY = /^(fastify|ali-oss|ioredis|prom-client|node-forge|pino|fast-xml-parser|env-schema|urllib|@fastify\/(formbody|multipart))\//

const COMMANDS = ['serve', 'sim', 'upload', 'send', 'demo', 'reconcile']

describe('oss-callback command line', () => {
  let holder: Server | undefined
  afterEach(async () => {
    await new Promise((resolve) => { if (holder === undefined) resolve(undefined); else holder.close(resolve) })
    holder = undefined
  })

  it.each(['', ...COMMANDS])('oss-callback %s --help prints usage on stdout, exits 0, listens on nothing and loads no server library', async (name) => {
    const command = name === '' ? [] : [name]
    // A port that would be taken if the command listened: it must not matter.
    const proc = runCli(['--import', REPORT_LOADED, 'dist/cli.js', ...command, '--help'], { PORT: '0', HOST: '127.0.0.1' }, { raw: true })
    expect(await proc.exited).toBe(0)
    expect(proc.stdout()).toMatch(command.length === 0 ? /^Usage: oss-callback <command>/ : new RegExp(`^Usage: oss-callback ${command[0] as string}`))
    const loaded = JSON.parse(/LOADED (.*)$/.exec(proc.stderr())?.[1] ?? 'null') as string[]
    expect(loaded.filter((p) => HEAVY.test(`${p}/`))).toEqual([])
  })

  it('the load report sees a server library when one is loaded (the check above can fail)', async () => {
    const proc = runCli(['--import', REPORT_LOADED, 'dist/cli.js', 'serve'], { PORT: 'eighty' }, { raw: true })
    expect(await proc.exited).toBe(1)
    expect(proc.stderr()).toMatch(/LOADED .*env-schema/)
  })

  it.each(COMMANDS)('%s with an unknown flag prints one line on stderr and exits 1', async (command) => {
    const proc = runCli([command, '--bogus'], { PORT: '0', HOST: '127.0.0.1' })
    expect(await proc.exited).toBe(1)
    expect(proc.stdout()).toBe('')
    expect(proc.stderr()).toMatch(/^oss-callback[^\n]*bogus[^\n]*\n$/)
  })

  it('serve takes no arguments: flags and positionals are refused before anything listens', async () => {
    for (const args of [['--port', '9000', '--bogus'], ['9000'], ['--help', 'x']]) {
      const proc = runCli(['serve', ...args], { PORT: '0', HOST: '127.0.0.1' })
      expect(await proc.exited).toBe(1)
      expect(proc.stderr()).toMatch(/^oss-callback: serve takes no arguments \(it is configured by environment variables\), got "[^"]+"; see oss-callback serve --help\n$/)
    }
  })

  it('an unknown command or top-level option prints one line and exits 1', async () => {
    for (const [arg, what] of [['nope', 'command'], ['--bogus', 'option']] as const) {
      const proc = runCli([arg])
      expect(await proc.exited).toBe(1)
      expect(proc.stderr()).toBe(`oss-callback: unknown ${what} "${arg}"; see oss-callback --help\n`)
    }
  })

  it.each(['--version', '-v'])('%s prints the version from package.json', async (flag) => {
    const { version } = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }
    const proc = runCli([flag])
    expect(await proc.exited).toBe(0)
    expect(proc.stdout()).toBe(`${version}\n`)
  })

  async function occupiedPort (): Promise<number> {
    holder = createServer()
    await new Promise<void>((resolve) => holder?.listen(0, '127.0.0.1', resolve))
    return (holder.address() as AddressInfo).port
  }

  it('serve on a port already taken prints one line naming the address and exits 1', async () => {
    const port = await occupiedPort()
    const proc = runCli(['serve'], { PORT: String(port), HOST: '127.0.0.1' })
    expect(await proc.exited).toBe(1)
    expect(proc.stderr()).toBe(`oss-callback: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)\n`)
    expect(proc.stdout()).not.toContain('shutting down')
  })

  it('demo on a port already taken prints one line naming the address and exits 1', async () => {
    const port = await occupiedPort()
    const proc = runCli(['demo', '--port', String(port)])
    expect(await proc.exited).toBe(1)
    expect(proc.stderr()).toBe(`oss-callback: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)\n`)
  })
})
