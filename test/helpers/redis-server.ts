import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'

/** A throwaway redis-server on 127.0.0.1, no persistence. */
export interface RedisServer {
  url: string
  port: number
  /** The redis-server process id (tests freeze it with SIGSTOP and resume it with SIGCONT). */
  pid: number
  stop: () => Promise<void>
}

const MISSING = 'redis-server is not installed: these tests need the Debian package redis-server (apt-get install -y redis-server)'

/** Starts redis-server on a free loopback port and waits until it accepts connections. */
export async function startRedisServer (): Promise<RedisServer> {
  if (spawnSync('redis-server', ['--version']).error !== undefined) throw new Error(MISSING)
  const dir = mkdtempSync(join(tmpdir(), 'oss-cb-redis-'))
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const child: ChildProcess = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'notice'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    const started = await new Promise<boolean>((resolve) => {
      let out = ''
      const timer = setTimeout(() => { resolve(false) }, 10_000)
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve(true) }
      })
      child.once('exit', () => { clearTimeout(timer); resolve(false) })
    })
    if (started) {
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        pid: child.pid as number,
        stop: async () => {
          if (child.exitCode === null) {
            const exited = new Promise((resolve) => child.once('exit', resolve))
            // A process a test left frozen would never act on SIGTERM.
            child.kill('SIGCONT')
            child.kill('SIGTERM')
            await exited
          }
          rmSync(dir, { recursive: true, force: true })
        }
      }
    }
    child.kill('SIGKILL')
    // Another process may have taken the port between probe and bind: try a new one.
    if (attempt >= 2) {
      rmSync(dir, { recursive: true, force: true })
      throw new Error('redis-server did not start')
    }
  }
}
