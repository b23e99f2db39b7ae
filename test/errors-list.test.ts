import { describe, expect, it } from 'vitest'
import { errors, listErrorCodes, type OssCallbackError } from '../src/errors.js'

describe('listErrorCodes', () => {
  it('regression: every listed message had a trailing space; each now reads exactly as the error a caller receives', () => {
    const listed = listErrorCodes()
    expect(listed.length).toBe(Object.keys(errors).length)
    for (const entry of listed) {
      expect(entry.message).toBe(entry.message.trim())
      if (entry.code === 'OSS_CB_ERR_INVALID_OPTION') continue
      const E = Object.values(errors).find((e) => new (e as new () => OssCallbackError)().code === entry.code) as new () => OssCallbackError
      expect(entry.message).toBe(new E().message)
    }
    expect(listed.find((e) => e.code === 'OSS_CB_ERR_NOT_FOUND')).toEqual({ code: 'OSS_CB_ERR_NOT_FOUND', statusCode: 404, message: 'Not found' })
  })
})
