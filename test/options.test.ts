import { describe, expect, it } from 'vitest'
import { isOssCallbackError } from '../src/errors.js'
import { wholeNumberOption } from '../src/options.js'

describe('wholeNumberOption', () => {
  it('takes the fallback for undefined and returns a value in range', () => {
    expect(wholeNumberOption('n', undefined, 7)).toBe(7)
    expect(wholeNumberOption('n', 1, 7)).toBe(1)
    expect(wholeNumberOption('n', 0, 7, { min: 0 })).toBe(0)
    expect(wholeNumberOption('n', 64, 7, { max: 64 })).toBe(64)
  })

  it('refuses anything else with one coded line that names the range and the value', () => {
    const cases: Array<[unknown, { min?: number, max?: number }, string]> = [
      [0, {}, 'n must be a positive whole number, got 0'],
      [1.5, {}, 'n must be a positive whole number, got 1.5'],
      ['3', {}, 'n must be a positive whole number, got 3'],
      [Number.NaN, {}, 'n must be a positive whole number, got NaN'],
      [2 ** 53, {}, 'n must be a positive whole number, got 9007199254740992'],
      [-1, { min: 0 }, 'n must be a whole number >= 0, got -1'],
      [65, { max: 64 }, 'n must be a whole number from 1 to 64, got 65'],
      [-1, { min: 0, max: 65535 }, 'n must be a whole number from 0 to 65535, got -1']
    ]
    for (const [value, range, message] of cases) {
      let thrown: unknown
      try { wholeNumberOption('n', value, 7, range) } catch (err) { thrown = err }
      expect(isOssCallbackError(thrown) && thrown.code).toBe('OSS_CB_ERR_INVALID_OPTION')
      expect((thrown as Error).message).toBe(`Invalid option: ${message}`)
    }
  })
})
