import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from './ports.js'

/** A throwaway PostgreSQL cluster on 127.0.0.1, run as the `postgres` user. */
export interface PostgresServer {
  port: number
  /** A URL for a fresh, empty database of its own. */
  createDatabase: () => Promise<string>
  /** Stops the server by its pid (fast shutdown), keeping its files: an outage. */
  pause: () => Promise<void>
  /** Starts it again on the same port after {@link PostgresServer.pause}. */
  resume: () => Promise<void>
  /** Stops the cluster by its pid (fast shutdown) and deletes its files. */
  stop: () => Promise<void>
}

const MISSING = 'PostgreSQL is not installed: these tests need the Debian package postgresql (apt-get install -y postgresql)'

function binDir (): string {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : []
  const found = versions.map((v) => join(root, v, 'bin')).find((d) => existsSync(join(d, 'initdb')))
  if (found === undefined) throw new Error(MISSING)
  return found
}

function asPostgres (command: string, args: string[]): void {
  // Never as root: PostgreSQL refuses to, and the tests run as root.
  const r = spawnSync('runuser', ['-u', 'postgres', '--', command, ...args], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`${command} failed: ${r.stderr || r.stdout || String(r.error)}`)
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

let databases = 0

/** initdb + pg_ctl start on a free loopback port, in a temp dir owned by `postgres`. */
export async function startPostgresServer (): Promise<PostgresServer> {
  const bin = binDir()
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
  const dir = mkdtempSync(join(tmpdir(), 'oss-cb-pg-'))
  chownSync(dir, uid, gid)
  const data = join(dir, 'data')
  asPostgres(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale', 'C'])
  const start = (port: number): number => {
    asPostgres(join(bin, 'pg_ctl'), ['start', '-w', '-t', '30', '-D', data, '-l', join(dir, 'log'),
      '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=100`])
    return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
  }
  const halt = async (pid: number): Promise<void> => {
    if (alive(pid)) process.kill(pid, 'SIGINT')
    for (let i = 0; i < 300 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    if (alive(pid)) process.kill(pid, 'SIGKILL')
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    let pid: number
    try {
      pid = start(port)
    } catch (err) {
      // Another process may have taken the port between probe and bind: try a new one.
      if (attempt >= 2) { rmSync(dir, { recursive: true, force: true }); throw err }
      continue
    }
    const admin = `postgres://postgres@127.0.0.1:${port}/postgres`
    return {
      port,
      pause: async () => { await halt(pid) },
      resume: async () => { pid = start(port) },
      createDatabase: async () => {
        const name = `t${process.pid}_${++databases}`
        const client = new pg.Client(admin)
        await client.connect()
        try { await client.query(`CREATE DATABASE ${name}`) } finally { await client.end() }
        return `postgres://postgres@127.0.0.1:${port}/${name}`
      },
      stop: async () => {
        await halt(pid)
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
}
