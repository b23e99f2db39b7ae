import { parseArgs } from 'node:util'
import { invalidOption } from '../errors.js'
import type { Demo } from './demo.js'

export const DEMO_USAGE = `Usage: oss-callback demo [--port 8000] [--host 127.0.0.1]

Starts a local OSS simulator, a callback receiver with upload tickets on, and a small app
backend serving an upload page. Open the page, choose a file: it is uploaded straight to the
simulator with a ticket's PostObject form, and the page shows the receiver's reply.
`

/** Where the command writes. */
export interface DemoIo {
  stdout: (text: string) => void
}

/** `oss-callback demo`: runs until SIGINT/SIGTERM. Returns the running demo, or undefined after `--help`. */
export async function runDemoCommand (argv: string[], io: DemoIo = { stdout: (t) => { process.stdout.write(t) } }): Promise<Demo | undefined> {
  let values: { port?: string, host?: string, help?: boolean }
  try {
    values = parseArgs({
      args: argv,
      options: { port: { type: 'string' }, host: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true
    }).values
  } catch (err) {
    throw invalidOption((err as Error).message)
  }
  if (values.help === true) {
    io.stdout(DEMO_USAGE)
    return undefined
  }
  if (values.port !== undefined && (!/^\d+$/.test(values.port) || Number(values.port) > 65535)) throw invalidOption('--port must be a whole number from 0 to 65535')
  // Loaded here, not at the top: `demo --help` stays fast without fastify and the simulator.
  const [{ DEMO_BUCKET, startDemo }, { default: closeWithGrace }] = await Promise.all([import('./demo.js'), import('close-with-grace')])
  const demo = await startDemo({
    ...(values.port === undefined ? {} : { port: Number(values.port) }),
    ...(values.host === undefined ? {} : { host: values.host }),
    log: (line) => { io.stdout(`${new Date().toISOString()} ${line}\n`) }
  })
  closeWithGrace({ delay: 5000 }, async () => { await demo.close() })
  io.stdout([
    'oss-callback demo: browser direct upload with tickets',
    `  upload page    ${demo.url}   <- open this`,
    `  OSS simulator  ${demo.simOrigin}  (bucket ${DEMO_BUCKET}, CORS open to the page)`,
    `  receiver       ${demo.receiverOrigin}/oss/callback  (tickets on; the page's backend holds the bearer token)`,
    'Ctrl-C stops all three.',
    ''
  ].join('\n'))
  return demo
}
