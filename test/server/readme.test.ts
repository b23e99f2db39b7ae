import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { crc64 } from '../../src/protocol/crc64.js'
import { buildApp } from '../../src/server/app.js'
import { CONFIG_VARIABLES, loadConfig } from '../../src/server/config.js'
import { docCallback } from '../helpers/fixtures.js'
import { FORWARD_OUTCOMES } from '../../src/server/forward.js'
import { METRIC_NAMES } from '../../src/server/metrics.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const serverDoc = readFileSync(new URL('../../docs/server.md', import.meta.url), 'utf8')
const section = (heading: string): string => {
  const start = serverDoc.indexOf(`\n## ${heading}\n`)
  expect(start).toBeGreaterThan(-1)
  const end = serverDoc.indexOf('\n## ', start + 1)
  return serverDoc.slice(start, end === -1 ? undefined : end)
}

describe('docs/server.md', () => {
  it('has a configuration row for every environment variable the server reads, and no other', () => {
    const rows = [...section('Configuration').matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1])
    expect(new Set(rows)).toEqual(new Set(CONFIG_VARIABLES))
  })

  it('has a row for every metric the server exports, and no other', () => {
    const rows = [...section('Metrics and health').matchAll(/^\| `(oss_callback_[a-z_]+)` \|/gm)].map((m) => m[1])
    expect(new Set(rows)).toEqual(new Set(Object.values(METRIC_NAMES)))
  })

  it('names every forward outcome label', () => {
    const row = section('Metrics and health').split('\n').find((l) => l.startsWith(`| \`${METRIC_NAMES.forwards}\``)) ?? ''
    for (const outcome of FORWARD_OUTCOMES) expect(row).toContain(`\`${outcome}\``)
  })
})

describe('the README\'s claims about the quick start', () => {
  it('one byte changed: the query or body gives 403 SIGNATURE_MISMATCH, the path gives 404 NOT_FOUND, as the text says', async () => {
    expect(readme).toContain('Change one byte of the query or the body and the answer is `403` with `OSS_CB_ERR_SIGNATURE_MISMATCH`; a changed\npath is not the callback path any more, and gets `404` with `OSS_CB_ERR_NOT_FOUND`.')
    const app = await buildApp(loadConfig({ OSS_CALLBACK_PATH: '/index.php', LOG_LEVEL: 'silent' }))
    try {
      const send = async (url: string, body: string): Promise<{ statusCode: number, code: unknown }> => {
        const res = await app.inject({ method: 'POST', url, headers: docCallback.headers, payload: body })
        return { statusCode: res.statusCode, code: (res.json() as { code?: unknown }).code }
      }
      expect((await send('/index.php?id=1&index=2', docCallback.body)).statusCode).toBe(200)
      expect(await send('/index.php?id=1&index=3', docCallback.body)).toEqual({ statusCode: 403, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
      expect(await send('/index.php?id=1&index=2', docCallback.body.replace('yonghu', 'yonghv'))).toEqual({ statusCode: 403, code: 'OSS_CB_ERR_SIGNATURE_MISMATCH' })
      expect(await send('/index.phq?id=1&index=2', docCallback.body)).toEqual({ statusCode: 404, code: 'OSS_CB_ERR_NOT_FOUND' })
    } finally {
      await app.close()
    }
  })

  it('the sample upload\'s reply and summary match the file the README creates (size, ETag, Content-MD5, CRC-64)', () => {
    const printf = /^printf '([^']*)' > (\S+)$/m.exec(readme)
    expect(printf).not.toBeNull()
    const [, text, name] = printf as unknown as [string, string, string]
    const bytes = Buffer.from(text.replace(/\\n/g, '\n'))
    const md5 = createHash('md5').update(bytes)
    const digest = md5.digest()
    const reply = readme.split('\n').find((l) => l.startsWith('{"Status":"OK","bucket":"demo"'))
    expect(JSON.parse(reply ?? '{}')).toMatchObject({
      object: name,
      size: bytes.length,
      etag: digest.toString('hex').toUpperCase(),
      contentMd5: digest.toString('base64'),
      crc64: crc64(bytes).toString()
    })
    expect(readme).toContain(`upload: 100% (${bytes.length}/${bytes.length} bytes)`)
    expect(readme).toContain(`stored key "${name}" in bucket demo (PutObject, ${bytes.length} bytes, ETag ${digest.toString('hex').toUpperCase()})`)
  })
})
