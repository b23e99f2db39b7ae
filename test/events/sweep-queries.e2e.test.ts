import { afterAll, describe, expect, it } from 'vitest'
import { openEventStore } from '../../src/events/open.js'
import { eventId, type EventStore, type NewEvent } from '../../src/events/store.js'
import { useEventStores } from '../helpers/event-stores.js'

const { dialects } = useEventStores('oss-cb-sweepq-')

function event (n: number, over: Partial<NewEvent> = {}): NewEvent {
  return {
    id: eventId({ path: '/cb', query: '', body: Buffer.from(`body ${n}`), requestId: `req-${n}` }),
    type: 'oss.callback.verified',
    bucket: 'bucket',
    objectKey: `uploads/${n}.jpg`,
    etag: `ETAG${n}`,
    envelope: '{}',
    ...over
  }
}

describe.each(Object.keys(dialects) as Array<keyof typeof dialects>)('%s store: reconciliation queries', (dialect) => {
  const stores: EventStore[] = []
  let now = 1_000_000
  const open = async (url?: string): Promise<EventStore> => {
    const store = await openEventStore(url ?? await dialects[dialect](), { now: () => now })
    stores.push(store)
    return store
  }
  afterAll(async () => { for (const s of stores) await s.close() })

  it('findByObjects answers every event of the named keys of one bucket, in one query', async () => {
    const store = await open()
    await Promise.all([
      store.append(event(1)),
      store.append(event(2, { etag: null })),
      store.append(event(3)),
      store.append(event(4, { bucket: 'other', objectKey: 'uploads/1.jpg' })),
      store.append(event(5, { objectKey: 'uploads/1.jpg', etag: 'NEWER', type: 'oss.object.unconfirmed' }))
    ])
    const found = await store.findByObjects('bucket', ['uploads/1.jpg', 'uploads/2.jpg', 'uploads/9.jpg', "it's %_"])
    const rows = found.map((r) => `${r.objectKey} ${String(r.etag)} ${r.type} ${r.state}`).sort()
    expect(rows).toEqual([
      'uploads/1.jpg ETAG1 oss.callback.verified pending',
      'uploads/1.jpg NEWER oss.object.unconfirmed pending',
      'uploads/2.jpg null oss.callback.verified pending'
    ])
    expect(await store.findByObjects('bucket', [])).toEqual([])
    const many = Array.from({ length: 1000 }, (_, i) => `uploads/${i}.jpg`)
    expect((await store.findByObjects('bucket', many)).length).toBe(4)
    await expect(store.findByObjects('bucket', [...many, 'one more'])).rejects.toMatchObject({ code: 'OSS_CB_ERR_INVALID_OPTION' })
  })

  it('countWithoutObject counts the callbacks since a time that name no bucket or no object', async () => {
    const store = await open()
    now = 1_000_000
    await store.append(event(1, { objectKey: null }))
    now = 2_000_000
    await Promise.all([
      store.append(event(2, { bucket: null })),
      store.append(event(3, { bucket: null, objectKey: null, etag: null })),
      store.append(event(4))
    ])
    expect(await store.countWithoutObject(0)).toBe(3)
    expect(await store.countWithoutObject(1_500_000)).toBe(2)
  })

  it('withSweepLock runs one sweep at a time', async () => {
    const url = await dialects[dialect]()
    const a = await open(url)
    // PostgreSQL: a second store on the same database stands in for a second instance.
    const b = dialect === 'postgres' ? await open(url) : a
    let release!: () => void
    const held = new Promise<void>((resolve) => { release = resolve })
    const first = a.withSweepLock(async () => { await held; return 'first' })
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await b.withSweepLock(async () => 'second')).toEqual({ ran: false })
    release()
    expect(await first).toEqual({ ran: true, value: 'first' })
    expect(await b.withSweepLock(async () => 'third')).toEqual({ ran: true, value: 'third' })
    // A sweep that throws still releases the lock.
    await expect(a.withSweepLock(async () => { throw new Error('boom') })).rejects.toThrow('boom')
    expect(await b.withSweepLock(async () => 'fourth')).toEqual({ ran: true, value: 'fourth' })
  })
})
