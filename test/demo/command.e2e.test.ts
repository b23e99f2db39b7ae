import { afterEach, describe, expect, it } from 'vitest'
import { runCli, type CliProcess } from '../helpers/process.js'

// `npm test` builds dist/ first (pretest); these run the real command line.
describe('oss-callback demo (command line)', () => {
  let proc: CliProcess | undefined
  afterEach(async () => {
    if (proc !== undefined && proc.child.exitCode === null) {
      proc.kill('SIGKILL')
      await proc.exited
    }
    proc = undefined
  })

  it('serves the page from the built package, issues tickets through its backend, and stops on SIGTERM', async () => {
    proc = runCli(['demo', '--port', '0'])
    const [, page] = await proc.waitFor(/upload page +(http:\/\/127\.0\.0\.1:\d+\/)/, 20_000)
    const html = await (await fetch(page as string)).text()
    expect(html).toContain('<script src="/app.js" type="module"></script>')
    expect((await fetch(`${page as string}app.js`)).headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    const res = await fetch(`${page as string}api/ticket`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"filename":"a.txt","size":1}' })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ key: expect.stringMatching(/^uploads\/.+\/a\.txt$/), maxSizeBytes: 1 })
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
  }, 40_000)

  it('prints its usage, and refuses a bad port with exit 1', async () => {
    proc = runCli(['demo', '--help'])
    expect(await proc.exited).toBe(0)
    expect(proc.stdout()).toContain('Usage: oss-callback demo [--port 8000] [--host 127.0.0.1]')
    proc = runCli(['demo', '--port', 'eighty'])
    expect(await proc.exited).toBe(1)
    expect(proc.stderr()).toBe('oss-callback: Invalid option: --port must be a whole number from 0 to 65535 (OSS_CB_ERR_INVALID_OPTION)\n')
  })
})
