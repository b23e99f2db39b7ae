import { describe, expect, it } from 'vitest'
import { GroupCommit } from '../../src/events/group-commit.js'
import { atTurnEnd } from '../../src/turn.js'

describe('GroupCommit', () => {
  it('a write made by a callback released at the turn\'s end (the verifier\'s batch) leaves in that same turn', async () => {
    const order: string[] = []
    const commit = new GroupCommit<string>(async (ops) => { order.push(`batch ${ops.join(',')}`); return ops }, 1)
    let release = (): void => {}
    const released = new Promise<void>((resolve) => { release = resolve })
    const callback = async (name: string): Promise<string> => {
      await released
      await Promise.resolve()
      return await commit.write<string>(name)
    }
    const writes = [callback('a'), callback('b')]
    atTurnEnd(() => {
      // Queued in this turn's check phase: it runs after the next turn's I/O.
      setImmediate(() => order.push('next turn'))
      release()
    })
    expect(await Promise.all(writes)).toEqual(['a', 'b'])
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(order).toEqual(['batch a,b', 'next turn'])
  })
})
