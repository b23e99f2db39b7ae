import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { runCli, type CliProcess } from '../helpers/process.js'
import { aliOssClient, startFakeReceiver } from './stack.js'
import { SIM_DEV_CREDENTIALS, type Simulator } from '../../src/sim/server.js'

const procs: CliProcess[] = []
afterEach(() => {
  for (const p of procs.splice(0)) if (p.child.exitCode === null) p.kill('SIGKILL')
})

function cli (args: string[], env: Record<string, string> = {}): CliProcess {
  const p = runCli(args, env)
  procs.push(p)
  return p
}

async function startSim (): Promise<string> {
  const sim = cli(['sim', '--port', '0'])
  return (await sim.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1] as string
}

async function startReceiver (simOrigin: string): Promise<string> {
  const receiver = cli(['serve'], { HOST: '127.0.0.1', PORT: '0', OSS_CALLBACK_KEY_ORIGINS: simOrigin, LOG_LEVEL: 'info' })
  return (await receiver.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/))[1] as string
}

describe('sim, serve and send as real processes', () => {
  it('the README flow: a receiver trusting the simulator accepts its callbacks, send exits 0', async () => {
    const simOrigin = await startSim()
    const receiverOrigin = await startReceiver(simOrigin)
    const send = cli(['send', `${receiverOrigin}/oss/callback`, '--sim', simOrigin, '--key', 'photos/猫 1+1.jpg', '--size', '1024', '--var', 'uid=42'])
    expect(await send.exited).toBe(0)
    expect(JSON.parse(send.stdout())).toMatchObject({ Status: 'OK', bucket: 'examplebucket', object: 'photos/猫 1+1.jpg', size: 1024 })
    expect(send.stderr()).toContain('verdict: OSS would accept this reply')

    // Any SDK uploads to the simulator process; the callback is relayed.
    const client = aliOssClient({ origin: simOrigin, credentials: SIM_DEV_CREDENTIALS } as Simulator)
    const put = await client.put('from-ali-oss.txt', Buffer.from('hello'), {
      callback: { url: `${receiverOrigin}/oss/callback`, body: 'bucket=${bucket}&object=${object}&size=${size}' }
    } as never) as unknown as { data: unknown }
    expect(put.data).toEqual({ Status: 'OK', bucket: 'examplebucket', object: 'from-ali-oss.txt', size: 5, imageInfo: {} })
  })

  it('send exits 2 when OSS would refuse the answer, 1 when the simulator is not there', async () => {
    const simOrigin = await startSim()
    const redirect = await startFakeReceiver((_req, res) => { res.writeHead(301, { location: 'http://example.com/' }).end() })
    try {
      const refused = cli(['send', redirect.url, '--sim', simOrigin])
      expect(await refused.exited).toBe(2)
      expect(refused.stderr()).toContain('OSS would say: Error status : 301.')
    } finally {
      await redirect.close()
    }
    const closed = await startFakeReceiver((_req, res) => res.end())
    await closed.close()
    const missing = cli(['send', 'http://127.0.0.1:9/cb', '--sim', new URL(closed.url).origin])
    expect(await missing.exited).toBe(1)
    expect(missing.stderr()).toMatch(/^oss-callback: cannot reach the simulator at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); start it with: oss-callback sim\n$/)
  })

  it('sim exits 1 with one clear line when only one credential is set, and 0 on SIGTERM', async () => {
    const bad = cli(['sim', '--port', '0'], { OSS_ACCESS_KEY_ID: 'only-the-id' })
    expect(await bad.exited).toBe(1)
    expect(bad.stderr()).toBe('oss-callback: Invalid option: set both OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET, or neither to use the simulator\'s dev pair (OSS_CB_ERR_INVALID_OPTION)\n')
    const sim = cli(['sim', '--port', '0'])
    await sim.waitFor(/listening on/)
    sim.kill('SIGTERM')
    expect(await sim.exited).toBe(0)
  })

  it('sim --help and send --help describe every flag and exit 0 without listening', async () => {
    for (const [command, flags] of [
      ['sim', ['--port', '--host', '--data-dir', '--strict', '--callback-timeout-ms', '--max-object-bytes', '--public-origin', '--help']],
      ['send', ['--sim', '--bucket', '--key', '--size', '--callback-body', '--callback-body-type', '--callback-host', '--var', '--json', '--help']]
    ] as const) {
      for (const help of ['--help', '-h']) {
        const p = cli([command, help, '--port', '1'].slice(0, command === 'sim' ? 4 : 2))
        expect(await p.exited, `${command} ${help}`).toBe(0)
        expect(p.stderr()).toBe('')
        expect(p.stdout()).toMatch(new RegExp(`^Usage: oss-callback ${command} `))
        expect(p.stdout()).not.toContain('listening')
        // One line per flag, with a description after it, as `upload --help` has.
        for (const flag of flags) expect(p.stdout(), flag).toMatch(new RegExp(`^ {2}(-h, )?${flag}( <[^>]+>)? +\\S.*$`, 'm'))
      }
    }
  })

  it('an unknown flag or argument prints one line and exits 1', async () => {
    for (const args of [['sim', '--bogus'], ['sim', 'extra'], ['sim', '--port', '9000', '--bogus'], ['send'], ['send', 'http://127.0.0.1:9/a', 'http://127.0.0.1:9/b'], ['send', 'http://127.0.0.1:9/a', '--bogus']]) {
      const p = cli(args)
      expect(await p.exited, args.join(' ')).toBe(1)
      expect(p.stdout()).toBe('')
      expect(p.stderr(), args.join(' ')).toMatch(/^oss-callback: [^\n]+\n$/)
    }
  })

  it('sim with its port taken prints one line naming the address and exits 1', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      const p = cli(['sim', '--port', String(port)])
      expect(await p.exited).toBe(1)
      expect(p.stdout()).toBe('')
      expect(p.stderr()).toBe(`oss-callback: cannot listen on 127.0.0.1:${port}: the address is in use (EADDRINUSE)\n`)
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()))
    }
  })
})
