import OSS from 'ali-oss'
import { afterEach, describe, expect, it } from 'vitest'
import {
  buildPostPolicy, createPostForm, encodePostPolicy, policyExpiration, signPostPolicy, type PostPolicy, type PostPolicyInput
} from '../../src/protocol/post-policy.js'

const NOW = new Date(Date.UTC(2026, 0, 2, 23, 30, 5, 0))
const input: PostPolicyInput = {
  now: NOW,
  expiresInSeconds: 600,
  bucket: 'demo-bucket',
  key: 'uploads/abc/photo 1+.jpg',
  maxSizeBytes: 1048576,
  callback: 'eyJjYWxsYmFja1VybCI6Imh0dHA6Ly9leGFtcGxlLmNvbS9jYiJ9',
  vars: { 'x:ticket': 'T1' }
}

// ali-oss is the independent implementation the ecosystem trusts: our signatures must match its.
const client = new OSS({ region: 'oss-cn-hangzhou', accessKeyId: 'ak', accessKeySecret: 'sk', bucket: 'demo-bucket' }) as unknown as {
  calculatePostSignature: (policy: object) => { OSSAccessKeyId: string, Signature: string, policy: string }
  signPostObjectPolicyV4: (policy: object, date: Date) => string
}

describe('PostObject policy', () => {
  const originalTz = process.env.TZ
  afterEach(() => {
    if (originalTz === undefined) delete process.env.TZ
    else process.env.TZ = originalTz
  })

  it('computes the expiry in UTC whatever the local time zone is', () => {
    for (const tz of ['Asia/Shanghai', 'America/Los_Angeles', 'UTC']) {
      process.env.TZ = tz
      expect(policyExpiration(NOW, 600)).toBe('2026-01-02T23:40:05.000Z')
      // Crossing midnight UTC, where a local-time expiry would be a whole day off in Shanghai.
      expect(policyExpiration(NOW, 3600)).toBe('2026-01-03T00:30:05.000Z')
    }
  })

  it('pins bucket, exact key, size range, callback and variables', () => {
    expect(buildPostPolicy(input)).toEqual({
      expiration: '2026-01-02T23:40:05.000Z',
      conditions: [
        { bucket: 'demo-bucket' },
        ['eq', '$key', 'uploads/abc/photo 1+.jpg'],
        ['content-length-range', 0, 1048576],
        { callback: input.callback },
        ['eq', '$x:ticket', 'T1']
      ]
    })
  })

  it('pins one content type with eq and several with in', () => {
    expect(buildPostPolicy({ ...input, contentTypes: ['image/png'] }).conditions).toContainEqual(['eq', '$content-type', 'image/png'])
    expect(buildPostPolicy({ ...input, contentTypes: ['image/png', 'image/jpeg'] }).conditions)
      .toContainEqual(['in', '$content-type', ['image/png', 'image/jpeg']])
    expect(buildPostPolicy({ ...input, minSizeBytes: 5, maxSizeBytes: 5 }).conditions).toContainEqual(['content-length-range', 5, 5])
  })

  it('refuses inputs OSS would refuse or that would pin nothing', () => {
    const bad: Array<Partial<PostPolicyInput>> = [
      { expiresInSeconds: 0 }, { expiresInSeconds: 1.5 }, { bucket: 'Upper' }, { bucket: 'a' }, { key: '' },
      { key: 'k'.repeat(1024) }, { maxSizeBytes: -1 }, { minSizeBytes: 10, maxSizeBytes: 5 }, { maxSizeBytes: 6 * 1024 ** 3 },
      { contentTypes: [] }, { vars: { ticket: 'x' } }, { now: new Date(Number.NaN) }
    ]
    for (const patch of bad) {
      expect(() => buildPostPolicy({ ...input, ...patch }), JSON.stringify(patch)).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_INVALID_OPTION' }))
    }
  })
})

describe('PostObject form signatures', () => {
  const policy: PostPolicy = buildPostPolicy(input)

  it('V1 matches ali-oss calculatePostSignature', () => {
    const { fields } = signPostPolicy(policy, { accessKeyId: 'ak', accessKeySecret: 'sk' }, 'v1', NOW)
    const expected = client.calculatePostSignature(policy)
    expect(fields).toEqual({ OSSAccessKeyId: 'ak', policy: expected.policy, Signature: expected.Signature })
  })

  it('V4 adds its three fields to the conditions and matches ali-oss signPostObjectPolicyV4', () => {
    const signed = signPostPolicy(policy, { accessKeyId: 'ak', accessKeySecret: 'sk', region: 'oss-cn-hangzhou' }, 'v4', NOW)
    expect(signed.policy.conditions.slice(-3)).toEqual([
      { 'x-oss-signature-version': 'OSS4-HMAC-SHA256' },
      { 'x-oss-credential': 'ak/20260102/cn-hangzhou/oss/aliyun_v4_request' },
      { 'x-oss-date': '20260102T233005Z' }
    ])
    expect(signed.fields).toEqual({
      policy: encodePostPolicy(signed.policy),
      'x-oss-signature-version': 'OSS4-HMAC-SHA256',
      'x-oss-credential': 'ak/20260102/cn-hangzhou/oss/aliyun_v4_request',
      'x-oss-date': '20260102T233005Z',
      'x-oss-signature': client.signPostObjectPolicyV4(signed.policy, NOW)
    })
    expect(JSON.parse(Buffer.from(signed.fields.policy as string, 'base64').toString('utf8'))).toEqual(signed.policy)
  })

  it('V4 needs a region, and only v1 and v4 exist', () => {
    expect(() => signPostPolicy(policy, { accessKeyId: 'ak', accessKeySecret: 'sk' }, 'v4', NOW)).toThrow(/region is required/)
    expect(() => signPostPolicy(policy, { accessKeyId: 'ak', accessKeySecret: 'sk', region: 'r' }, 'v2' as 'v4', NOW)).toThrow(/v1 or v4/)
    expect(() => signPostPolicy(policy, { accessKeyId: '', accessKeySecret: 'sk' }, 'v1', NOW)).toThrow(/credentials/)
  })

  it('the form carries key, policy, signature, callback, variables and a single content type, in order', () => {
    const form = createPostForm({ ...input, contentTypes: ['image/jpeg'] }, { accessKeyId: 'ak', accessKeySecret: 'sk', region: 'cn-hangzhou' })
    expect(Object.keys(form.fields)).toEqual([
      'key', 'policy', 'x-oss-signature-version', 'x-oss-credential', 'x-oss-date', 'x-oss-signature', 'callback', 'x:ticket', 'Content-Type'
    ])
    expect(form.fields.key).toBe(input.key)
    expect(form.fields['x:ticket']).toBe('T1')
    expect(form.fields['Content-Type']).toBe('image/jpeg')
    const v1 = createPostForm({ ...input, contentTypes: ['image/jpeg', 'image/png'] }, { accessKeyId: 'ak', accessKeySecret: 'sk' }, 'v1')
    expect(Object.keys(v1.fields)).toEqual(['key', 'OSSAccessKeyId', 'policy', 'Signature', 'callback', 'x:ticket'])
  })
})
