import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openEventStore } from '../../src/events/open.js'
import type { EventStore } from '../../src/events/store.js'
import { runEventsCommand } from '../../src/server/events-command.js'
import { runCli } from '../helpers/process.js'

const T0 = Date.UTC(2026, 11, 1, 9, 0, 0)
let dir: string
let url: string
let t: number

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oss-cb-events-cmd-'))
  url = `sqlite:${join(dir, 'events.sqlite')}`
  t = T0
})
afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

async function seed (): Promise<EventStore> {
  const store = await openEventStore(url, { now: () => t })
  const add = async (id: string, key: string): Promise<void> => {
    await store.append({ id, type: 'oss.callback.verified', bucket: 'photos', objectKey: key, etag: 'E', envelope: JSON.stringify({ key }) })
    t += 60_000
  }
  await add('evt_a', 'users/1/a.jpg')
  await add('evt_b', 'users/2/b.jpg')
  await add('evt_c', 'other/c.jpg')
  await store.finish('evt_a', 'delivered', { at: t, status: 200, latencyMs: 3, outcome: 'delivered', error: null }, { status: 200, body: Buffer.from('{"ok":1}') })
  await store.finish('evt_b', 'dead', { at: t, status: 500, latencyMs: 4, outcome: 'retry', error: 'app answered 500' })
  return store
}

async function run (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await runEventsCommand(argv, {
    env: { OSS_CALLBACK_DATABASE_URL: url },
    stdout: { write: (c: string) => { out += c } },
    stderr: { write: (c: string) => { err += c } },
    now: () => t
  })
  return { code, out, err }
}

describe('oss-callback events (a real SQLite store, open by the server meanwhile)', () => {
  it('list filters by state, time and object prefix; --json gives one object a line', async () => {
    const server = await seed()
    try {
      const all = await run('list', '--json')
      expect(all.code).toBe(0)
      expect(all.out.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(['evt_a', 'evt_b', 'evt_c'])
      expect((await run('list', '--state', 'dead')).out).toMatch(/^evt_b +dead .*app answered 500$/m)
      expect((await run('list', '--object-prefix', 'users/', '--json')).out.trim().split('\n')).toHaveLength(2)
      expect((await run('list', '--since', new Date(T0 + 90_000).toISOString(), '--json')).out.trim().split('\n')).toHaveLength(1)
      expect((await run('list', '--since', '2m', '--json')).out.trim().split('\n')).toHaveLength(2)
    } finally { await server.close() }
  })

  it('show prints the envelope and every attempt; an unknown id exits 1', async () => {
    const server = await seed()
    try {
      const shown = await run('show', 'evt_a')
      expect(shown.code).toBe(0)
      const json = JSON.parse(shown.out) as Record<string, unknown>
      expect(json).toMatchObject({ id: 'evt_a', state: 'delivered', envelope: { key: 'users/1/a.jpg' }, answer: { status: 200, body: '{"ok":1}' } })
      expect(json.attemptsMade).toEqual([{ n: 1, at: expect.any(Number) as number, status: 200, latencyMs: 3, outcome: 'delivered', error: null }])
      expect((await run('show', 'evt_nope')).code).toBe(1)
    } finally { await server.close() }
  })

  it('redeliver by id or --state dead sets events pending; purge deletes by state and age; stats counts', async () => {
    const server = await seed()
    try {
      expect((await run('stats', '--json')).out).toBe(`${JSON.stringify({ counts: { pending: 1, delivered: 1, rejected: 0, dead: 1 }, oldestPendingAt: T0 + 120_000 })}\n`)
      expect((await run('redeliver', '--state', 'dead')).out).toBe('1 event set pending again\n')
      expect((await server.get('evt_b'))?.state).toBe('pending')
      expect((await run('redeliver', 'evt_a')).out).toBe('1 event set pending again\n')
      await server.finish('evt_a', 'delivered', null)
      t += 3_600_000
      expect((await run('purge', '--state', 'delivered', '--before', '30m')).out).toBe('1 event deleted\n')
      expect(await server.get('evt_a')).toBeNull()
      expect((await run('stats')).out).toMatch(/^pending +2$/m)
    } finally { await server.close() }
  })

  it('usage errors are one line, exit 1: unknown command, unknown flag, a flag of another command, a bad state or time', async () => {
    for (const argv of [['nope'], ['list', '--bogus'], ['list', '--before', '1h'], ['list', '--state', 'lost'], ['list', '--since', 'yesterday'], ['purge', '--state', 'dead'], ['redeliver']]) {
      const r = await run(...argv)
      expect(r.code, argv.join(' ')).toBe(1)
      expect(r.err.trim().split('\n'), argv.join(' ')).toHaveLength(1)
    }
  })

  it('through the CLI: --help exits 0; a missing store exits 1 in one line and is not created', async () => {
    const help = runCli(['events', '--help'])
    expect(await help.exited).toBe(0)
    expect(help.stdout()).toContain('Usage: oss-callback events')
    const missing = join(dir, 'missing.sqlite')
    const cli = runCli(['events', 'stats'], { OSS_CALLBACK_DATABASE_URL: `sqlite:${missing}` })
    expect(await cli.exited).toBe(1)
    expect(cli.stderr()).toMatch(/^oss-callback events: .*no event store at .*missing\.sqlite.* \(OSS_CB_ERR_STORE_UNUSABLE\)\n$/)
    expect(existsSync(missing)).toBe(false)
    const flag = runCli(['events', 'list', '--wat'], { OSS_CALLBACK_DATABASE_URL: url })
    expect(await flag.exited).toBe(1)
    expect(flag.stderr().trim().split('\n')).toHaveLength(1)
  })
})
