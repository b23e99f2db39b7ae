import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** A child process of `node dist/cli.js ...`, with its output collected. */
export interface CliProcess {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>
  /** Waits until stdout+stderr match `pattern`, or rejects after `timeoutMs`. */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>
  kill: (signal?: NodeJS.Signals) => void
}

/**
 * Starts `node dist/cli.js <args>` in the repository root with `env` added to a minimal environment;
 * with `raw`, `args` are Node's own (for flags before the script).
 */
export function runCli (args: string[], env: Record<string, string> = {}, { raw = false } = {}): CliProcess {
  const child = spawn(process.execPath, raw ? args : ['dist/cli.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  const listeners = new Set<() => void>()
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); for (const l of listeners) l() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); for (const l of listeners) l() })
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: (signal = 'SIGTERM') => { child.kill(signal) },
    waitFor: (pattern, timeoutMs = 10_000) => new Promise((resolve, reject) => {
      const check = (): void => {
        const m = pattern.exec(out + err)
        if (m !== null) { listeners.delete(check); clearTimeout(timer); resolve(m) }
      }
      const timer = setTimeout(() => { listeners.delete(check); reject(new Error(`timed out waiting for ${String(pattern)}; output:\n${out}${err}`)) }, timeoutMs)
      listeners.add(check)
      void exited.then(() => { if (listeners.has(check)) { listeners.delete(check); clearTimeout(timer); reject(new Error(`process exited before ${String(pattern)}; output:\n${out}${err}`)) } })
      check()
    })
  }
}
