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
})
