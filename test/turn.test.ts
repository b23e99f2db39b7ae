import { describe, expect, it } from 'vitest'
import { atTurnEnd } from '../src/turn.js'

const turnEnd = (): Promise<void> => new Promise((resolve) => { atTurnEnd(resolve) })

describe('atTurnEnd', () => {
  it('runs after the callbacks of the current turn, in the order they were scheduled, once each', async () => {
    const order: string[] = []
    atTurnEnd(() => order.push('a'))
    atTurnEnd(() => order.push('b'))
    order.push('sync')
    await turnEnd()
    expect(order).toEqual(['sync', 'a', 'b'])
  })

  it('what a callback\'s promise chain schedules, however deep, joins the same turn\'s end, before the next turn', async () => {
    const order: string[] = []
    let release = (): void => {}
    const released = new Promise<void>((resolve) => { release = resolve })
    // A batch resolved at the turn's end (the verifier), whose waiters go on for several steps and then
    // schedule a write for the turn's end (the group commit).
    const waiter = async (name: string): Promise<void> => {
      await released
      for (let i = 0; i < 5; i++) await Promise.resolve()
      atTurnEnd(() => order.push(`write ${name}`))
    }
    const waiters = [waiter('1'), waiter('2')]
    atTurnEnd(() => {
      order.push('batch')
      // Queued in this turn's check phase: with a plain setImmediate, the writes would run after it.
      setImmediate(() => order.push('next turn'))
      release()
    })
    await Promise.all(waiters)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(order).toEqual(['batch', 'write 1', 'write 2', 'next turn'])
  })

  it('a callback that throws does not stop the others, and the error is uncaught as from setImmediate', async () => {
    const seen: unknown[] = []
    const listeners = process.listeners('uncaughtException')
    process.removeAllListeners('uncaughtException')
    process.once('uncaughtException', (err) => { seen.push(err) })
    try {
      const order: string[] = []
      atTurnEnd(() => { throw new Error('boom') })
      atTurnEnd(() => order.push('after'))
      await turnEnd()
      await new Promise((resolve) => setTimeout(resolve, 10))
      expect(order).toEqual(['after'])
      expect(seen).toHaveLength(1)
      expect((seen[0] as Error).message).toBe('boom')
    } finally {
      process.removeAllListeners('uncaughtException')
      for (const l of listeners) process.on('uncaughtException', l)
    }
  })

  it('a callback that keeps scheduling itself does not hold the loop: other turns run meanwhile', async () => {
    let runs = 0
    let stop = false
    const again = (): void => { runs++; if (!stop) atTurnEnd(again) }
    atTurnEnd(again)
    // A timer can fire only if the loop gets past the turn's end.
    await new Promise((resolve) => setTimeout(resolve, 5))
    stop = true
    await turnEnd()
    expect(runs).toBeGreaterThan(16)
  })
})
