import { describe, expect, it } from 'vitest'
import { decodeStrictBase64 } from '../../src/protocol/base64.js'

const bad = expect.objectContaining({ code: 'OSS_CB_ERR_BAD_BASE64', statusCode: 400 })

describe('decodeStrictBase64', () => {
  it('decodes padded standard base64', () => {
    expect(decodeStrictBase64('aGk=', 100).toString()).toBe('hi')
    expect(decodeStrictBase64('aGVsbG8/Pz4+', 100).toString()).toBe('hello??>>')
  })

  it.each([
    ['empty', ''],
    ['missing padding', 'aGk'],
    ['URL-safe alphabet', 'aGVsbG8_Pz4-'],
    ['white space', 'aG k='],
    ['line break', 'aGVs\nbG8='],
    ['a comma-joined duplicate', 'aGk=, aGk='],
    ['non-zero padding bits', 'aGl='],
    ['padding in the middle', 'aG==aGk='],
    ['non-ASCII', 'aGk＝']
  ])('refuses %s', (_name, value) => {
    expect(() => decodeStrictBase64(value, 100)).toThrow(bad)
  })

  it('refuses a value longer than the cap', () => {
    expect(() => decodeStrictBase64('QUFB'.repeat(10), 39)).toThrow(bad)
    expect(decodeStrictBase64('QUFB'.repeat(10), 40).length).toBe(30)
  })
})
