import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { parseRequestFile } from '../../src/diagnose/request-file.js'
import { OSS_DOC_CALLBACK } from '../../src/receiver/self-test-callback.js'
import { buildApp } from '../../src/server/app.js'
import { loadConfig } from '../../src/server/config.js'
import { captureLogger } from '../helpers/log-capture.js'

let app: FastifyInstance | undefined
let dir: string | undefined
afterEach(async () => {
  await app?.close()
  app = undefined
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

describe('the standalone server: OSS_CALLBACK_CAPTURE_DIR and OSS_CALLBACK_CAPTURE_MAX', () => {
  it('keeps the last OSS_CALLBACK_CAPTURE_MAX refused callbacks, and logs the hint for each', async () => {
    dir = mkdtempSync(join(tmpdir(), 'oss-cb-server-capture-'))
    const captures = join(dir, 'captures')
    const log = captureLogger('info')
    app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php', OSS_CALLBACK_CAPTURE_DIR: captures, OSS_CALLBACK_CAPTURE_MAX: '2' }), { logger: log.logger })
    // OSS's documented callback, signed for /index.php?id=1&index=2, arriving with a query a proxy changed.
    for (const n of [3, 4, 5]) {
      const res = await app.inject({ method: 'POST', url: `/index.php?id=1&index=${n}`, headers: { ...OSS_DOC_CALLBACK.headers, 'x-original-uri': '/index.php?id=1&index=2' }, payload: OSS_DOC_CALLBACK.body })
      expect(res.statusCode).toBe(403)
    }
    await app.close()
    app = undefined
    const files = readdirSync(captures).sort()
    expect(files.map((f) => parseRequestFile(readFileSync(join(captures, f))).url)).toEqual(['/index.php?id=1&index=4', '/index.php?id=1&index=5'])
    for (const f of files) expect(statSync(join(captures, f)).mode & 0o777).toBe(0o600)
    const hints = log.lines().filter((l) => l.msg === 'callback refused').map((l) => l.hint)
    expect(hints).toHaveLength(3)
    for (const h of hints) expect(h).toMatch(/^OSS signed the target \/index\.php\?id=1&index=2; the request arrived as \/index\.php\?id=1&index=\d: a proxy changes the query/)
  })

  it('refuses a bad OSS_CALLBACK_CAPTURE_MAX with a one-line error', () => {
    expect(() => loadConfig({ OSS_CALLBACK_CAPTURE_MAX: '0' })).toThrow('OSS_CALLBACK_CAPTURE_MAX must be a whole number from 1 to 10000, got "0"')
    expect(() => loadConfig({ OSS_CALLBACK_CAPTURE_MAX: '5x' })).toThrow(/OSS_CALLBACK_CAPTURE_MAX must be a whole number/)
  })
})
