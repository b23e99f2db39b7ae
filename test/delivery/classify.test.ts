import { describe, expect, it } from 'vitest'
import { classifyAnswer, classifyFailure, MAX_APP_REPLY_BYTES } from '../../src/delivery/classify.js'

const json = Buffer.from('{"ok":true}')

describe('classifyAnswer', () => {
  it.each([
    [200, json, 'delivered', 'ok'],
    [201, json, 'delivered', 'ok'],
    [204, Buffer.alloc(0), 'delivered', 'no_content'],
    [200, Buffer.from('OK'), 'retry', 'bad_reply'],
    [200, Buffer.alloc(0), 'retry', 'bad_reply'],
    [200, Buffer.from('\ufeff{}'), 'retry', 'bad_reply'],
    [200, Buffer.from([0x22, 0xff, 0x22]), 'retry', 'bad_reply'],
    [400, json, 'rejected', 'refused'],
    [401, json, 'rejected', 'refused'],
    [403, json, 'rejected', 'refused'],
    [404, json, 'rejected', 'refused'],
    [410, json, 'rejected', 'refused'],
    [422, json, 'rejected', 'refused'],
    [408, json, 'retry', 'bad_status'],
    [409, json, 'retry', 'bad_status'],
    [425, json, 'retry', 'bad_status'],
    [429, json, 'retry', 'bad_status'],
    [500, json, 'retry', 'bad_status'],
    [502, json, 'retry', 'bad_status'],
    [503, json, 'retry', 'bad_status'],
    [504, json, 'retry', 'bad_status'],
    [301, json, 'retry', 'bad_status'],
    [302, json, 'retry', 'bad_status'],
    [101, json, 'retry', 'bad_status']
  ] as const)('%i %s → %s (%s)', (status, body, outcome, reason) => {
    expect(classifyAnswer(status, body)).toMatchObject({ outcome, reason })
  })

  it('a 200 over 1 MB is a failure to retry, whether cut off or whole', () => {
    const big = Buffer.from(JSON.stringify('x'.repeat(MAX_APP_REPLY_BYTES)))
    expect(classifyAnswer(200, big)).toEqual({ outcome: 'retry', reason: 'too_large', error: 'app reply over 1 MB' })
    expect(classifyAnswer(200, Buffer.alloc(0), true)).toMatchObject({ outcome: 'retry', reason: 'too_large' })
    const exactly = Buffer.from(JSON.stringify('x'.repeat(MAX_APP_REPLY_BYTES - 2)))
    expect(exactly.length).toBe(MAX_APP_REPLY_BYTES)
    expect(classifyAnswer(200, exactly).outcome).toBe('delivered')
  })

  it('never quotes the app body in the error', () => {
    expect(classifyAnswer(200, Buffer.from('secret-token')).error).toBe('app answered 200 without a JSON body')
    expect(classifyAnswer(422, Buffer.from('secret-token')).error).toBe('app answered 422')
  })
})

describe('classifyFailure', () => {
  it('refused or reset, timeout and cut-short attempts are retried', () => {
    expect(classifyFailure('unreachable', 'ECONNREFUSED')).toEqual({ outcome: 'retry', reason: 'unreachable', error: 'app unreachable (ECONNREFUSED)' })
    expect(classifyFailure('timeout')).toEqual({ outcome: 'retry', reason: 'timeout', error: 'app did not answer in time' })
    expect(classifyFailure('aborted').outcome).toBe('retry')
  })
})
