#!/usr/bin/env node
import { readFileSync } from 'node:fs'

// Kept thin on purpose: each command's module is imported only when that command runs, so
// `oss-callback --help` and `<command> --help` never load fastify, ali-oss or Redis's client.

const USAGE = `Usage: oss-callback <command> [--help]

Commands:
  serve    run the standalone callback receiver (configured by environment variables; serve --help)
  sim      run a local OSS stand-in that performs upload callbacks as OSS does (sim --help)
  upload   upload a file with an upload callback and print the relayed reply (upload --help)
  send     ask a running simulator to fire a callback and judge the answer as OSS would (send --help)
  demo     a browser upload page, the simulator and a receiver with upload tickets, all local (demo --help)
  diagnose explain why a captured callback was refused (diagnose --help)
  events   list, show, redeliver and purge the events of forward mode's event log (events --help)
  reconcile record the uploads whose callback never reached the event log (reconcile --help)

Options:
  -h, --help       show this help
  -v, --version    print the version
`

const SERVE_USAGE = `Usage: oss-callback serve

Runs the standalone callback receiver until SIGTERM or SIGINT. It takes no arguments: it is
configured by environment variables (PORT, HOST, OSS_CALLBACK_PATH, OSS_CALLBACK_KEY_ORIGINS,
OSS_CALLBACK_FORWARD_URL, OSS_CALLBACK_TICKET_TOKEN, OSS_CALLBACK_REDIS_URL, ...; the configuration
table of docs/server.md lists them all), so that a container and a shell start it the same way.

Options:
  -h, --help    show this help
`

/** Thrown for a command line the program cannot run: printed as one line, exit 1. */
class UsageError extends Error {}

const isHelp = (arg: string | undefined): boolean => arg === '--help' || arg === '-h'

function version (): string {
  // ../package.json from both src/cli.ts and dist/cli.js.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Runs one command; returns the exit code, or undefined for a long-running server. */
async function main (argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve': {
      if (rest.length === 1 && isHelp(rest[0])) {
        process.stdout.write(SERVE_USAGE)
        return 0
      }
      if (rest.length > 0) throw new UsageError(`serve takes no arguments (it is configured by environment variables), got ${JSON.stringify(rest[0])}; see oss-callback serve --help`)
      const [{ loadConfig }, { serve }] = await Promise.all([import('./server/config.js'), import('./server/serve.js')])
      await serve(loadConfig(process.env))
      return undefined
    }
    case 'upload': {
      const { abortOnSigint, runUploadCommand } = await import('./client/command.js')
      return await runUploadCommand(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr, deps: { signal: abortOnSigint() } })
    }
    case 'sim': {
      const { runSimCommand } = await import('./sim/commands.js')
      return (await runSimCommand(rest)) === undefined ? 0 : undefined
    }
    case 'send': {
      const { runSendCommand } = await import('./sim/commands.js')
      return await runSendCommand(rest)
    }
    case 'demo': {
      const { runDemoCommand } = await import('./demo/command.js')
      return (await runDemoCommand(rest)) === undefined ? 0 : undefined
    }
    case 'diagnose': {
      const { runDiagnoseCommand } = await import('./diagnose/command.js')
      return await runDiagnoseCommand(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr })
    }
    case 'reconcile': {
      const { runReconcileCommand } = await import('./reconcile/command.js')
      return await runReconcileCommand(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr })
    }
    case 'events': {
      const { runEventsCommand } = await import('./server/events-command.js')
      return await runEventsCommand(rest, { env: process.env, stdout: process.stdout, stderr: process.stderr })
    }
    case undefined:
      process.stderr.write(USAGE)
      return 1
    case '-h':
    case '--help':
    case '-v':
    case '--version':
      if (rest.length > 0) throw new UsageError(`${command} takes no arguments, got ${JSON.stringify(rest[0])}`)
      process.stdout.write(isHelp(command) ? USAGE : `${version()}\n`)
      return 0
    default:
      throw new UsageError(command.startsWith('-')
        ? `unknown option ${JSON.stringify(command)}; see oss-callback --help`
        : `unknown command ${JSON.stringify(command)}; see oss-callback --help`)
  }
}

interface ListenError { code?: unknown, syscall?: unknown, address?: unknown, port?: unknown }

/** One line for anything that stops a command. */
function describeFailure (err: unknown): string {
  if (err instanceof UsageError) return err.message
  const e = (err ?? {}) as ListenError & { message?: unknown }
  if (e.syscall === 'listen' && typeof e.code === 'string') {
    const where = typeof e.address === 'string' ? `${e.address.includes(':') ? `[${e.address}]` : e.address}:${String(e.port)}` : String(e.port ?? '?')
    const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EADDRNOTAVAIL' ? 'address not available' : 'listen failed'
    return `cannot listen on ${where}: ${why} (${e.code})`
  }
  const message = String(e.message ?? err).split('\n')[0] as string
  // Coded errors of the registry (OSS_CB_ERR_*) carry their code; printed beside the message.
  return typeof e.code === 'string' && e.code.startsWith('OSS_CB_ERR_') ? `${message} (${e.code})` : message
}

main(process.argv.slice(2)).then((code) => {
  if (code !== undefined) process.exitCode = code
}, (err: unknown) => {
  process.stderr.write(`oss-callback: ${describeFailure(err)}\n`)
  process.exitCode = 1
})
