#!/usr/bin/env node
import { isOssCallbackError } from './errors.js'
import { loadConfig } from './server/config.js'
import { serve } from './server/serve.js'
import { runDemoCommand } from './demo/command.js'

const USAGE = `Usage: oss-callback <command>

Commands:
  serve    run the standalone callback receiver (configured by environment variables; see README)
  sim      run a local OSS stand-in that performs upload callbacks as OSS does (sim --help)
  upload   upload a file with an upload callback and print the relayed reply (upload --help)
  send     ask a running simulator to fire a callback and judge the answer as OSS would (send --help)
  demo     a browser upload page, the simulator and a receiver with upload tickets, all local (demo --help)
  diagnose explain why a captured callback was refused (diagnose --help)
`

/** Runs one command; returns the exit code, or undefined for a long-running server. */
async function main (argv: string[]): Promise<number | undefined> {
  const [command] = argv
  switch (command) {
    case 'serve': {
      const config = loadConfig(process.env)
      await serve(config)
      return undefined
    }
    case 'upload': {
      // Loaded on demand: ali-oss and its HTTP stack are not needed by the other commands.
      const { abortOnSigint, runUploadCommand } = await import('./client/command.js')
      return await runUploadCommand(argv.slice(1), { env: process.env, stdout: process.stdout, stderr: process.stderr, deps: { signal: abortOnSigint() } })
    }
    case 'sim': {
      const { runSimCommand } = await import('./sim/commands.js')
      return (await runSimCommand(argv.slice(1))) === undefined ? 0 : undefined
    }
    case 'send': {
      const { runSendCommand } = await import('./sim/commands.js')
      return await runSendCommand(argv.slice(1))
    }
    case 'diagnose': {
      const { runDiagnoseCommand } = await import('./diagnose/command.js')
      return await runDiagnoseCommand(argv.slice(1), { env: process.env, stdout: process.stdout, stderr: process.stderr })
    }
    case 'demo':
      return (await runDemoCommand(argv.slice(1))) === undefined ? 0 : undefined
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE)
      return command === undefined ? 1 : 0
    default:
      process.stderr.write(`oss-callback: unknown command ${JSON.stringify(command)}\n${USAGE}`)
      return 1
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code !== undefined) process.exitCode = code
}, (err: unknown) => {
  const message = isOssCallbackError(err) ? `${err.message} (${err.code})` : String((err as Error)?.message ?? err)
  process.stderr.write(`oss-callback: ${message}\n`)
  process.exitCode = 1
})
