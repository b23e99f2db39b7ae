import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'

/** Debian's nginx binary. */
export const NGINX = '/usr/sbin/nginx'
const MISSING = `nginx is not installed at ${NGINX}: these tests need the Debian package nginx (apt-get install -y nginx)`

/** A throwaway nginx on 127.0.0.1 with its own config and prefix directory. */
export interface NginxServer {
  port: number
  origin: string
  /** nginx's error log so far. */
  errorLog: () => string
  stop: () => Promise<void>
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

/**
 * Starts nginx in the foreground (`daemon off`, so the child is the master and is
 * stopped by its pid) with `serverBlock` as the body of its one `server { }`, listening
 * on a free loopback port. Temporary files and logs stay in its own prefix directory.
 */
export async function startNginx (serverBlock: string): Promise<NginxServer> {
  if (spawnSync(NGINX, ['-v']).error !== undefined) throw new Error(MISSING)
  const prefix = mkdtempSync(join(tmpdir(), 'oss-cb-nginx-'))
  for (const d of ['logs', 'tmp']) mkdirSync(join(prefix, d))
  const errorLog = join(prefix, 'logs', 'error.log')
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const conf = join(prefix, 'nginx.conf')
    // As root the workers would otherwise switch to "nobody", which cannot use the prefix directory.
    const user = process.getuid?.() === 0 ? 'user root root;\n' : ''
    writeFileSync(conf, `${user}daemon off;
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${errorLog} info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${join(prefix, 'tmp', 'body')};
  proxy_temp_path ${join(prefix, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(prefix, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(prefix, 'tmp', 'scgi')};
  server {
    listen 127.0.0.1:${port};
${serverBlock}
  }
}
`)
    const child: ChildProcess = spawn(NGINX, ['-p', prefix, '-c', conf, '-e', errorLog], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    let up = false
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      if (await accepts(port)) { up = true; break }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const readLog = (): string => { try { return readFileSync(errorLog, 'utf8') } catch { return '' } }
    if (up && child.exitCode === null) {
      return {
        port,
        origin: `http://127.0.0.1:${port}`,
        errorLog: readLog,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM')
            await exited
          }
          rmSync(prefix, { recursive: true, force: true })
        }
      }
    }
    if (child.exitCode === null) child.kill('SIGKILL')
    await exited
    // Another process may have taken the port between probe and bind: try a new one.
    if (attempt >= 2) {
      const log = readLog()
      rmSync(prefix, { recursive: true, force: true })
      throw new Error(`nginx did not start: ${stderr}${log}`)
    }
  }
}
