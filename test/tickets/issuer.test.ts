import { describe, expect, it } from 'vitest'
import { createUploadTickets, parseTicketRequest, TICKET_CALLBACK_BODY, uploadUrlOf } from '../../src/tickets/issuer.js'
import { parseCallbackTemplate } from '../../src/protocol/body.js'

const base = {
  accessKeyId: 'ak', accessKeySecret: 'sk', bucket: 'b-1', endpoint: 'https://oss-cn-hangzhou.aliyuncs.com',
  region: 'cn-hangzhou', callbackUrl: 'https://app.example.com/cb'
}

describe('upload URLs', () => {
  it('are virtual-hosted for a host name and path style for an address', () => {
    expect(uploadUrlOf('https://oss-cn-hangzhou.aliyuncs.com', 'b-1')).toBe('https://b-1.oss-cn-hangzhou.aliyuncs.com')
    expect(uploadUrlOf('oss-cn-hangzhou.aliyuncs.com', 'b-1')).toBe('https://b-1.oss-cn-hangzhou.aliyuncs.com')
    expect(uploadUrlOf('https://oss.example.com:8443/', 'b-1')).toBe('https://b-1.oss.example.com:8443')
    expect(uploadUrlOf('http://127.0.0.1:8090', 'b-1')).toBe('http://127.0.0.1:8090/b-1')
    expect(uploadUrlOf('http://localhost:8090', 'b-1')).toBe('http://localhost:8090/b-1')
    expect(uploadUrlOf('http://[::1]:8090', 'b-1')).toBe('http://[::1]:8090/b-1')
    for (const bad of ['https://user:pw@oss.example.com', 'https://oss.example.com/x', 'https://oss.example.com?q', 'ftp://oss.example.com', 'http://']) {
      expect(() => uploadUrlOf(bad, 'b-1'), bad).toThrow(/endpoint must be/)
    }
  })
})

describe('ticket requests', () => {
  it('read the known fields and refuse wrong types', () => {
    expect(parseTicketRequest(undefined)).toEqual({})
    expect(parseTicketRequest({ key: 'a/b', filename: 'f', contentType: 'image/png', size: 0, other: 1 }))
      .toEqual({ key: 'a/b', filename: 'f', contentType: 'image/png', size: 0 })
    for (const bad of [[], 'x', 5, { size: '5' }, { size: Number.MAX_SAFE_INTEGER + 2 }, { filename: 'x'.repeat(1025) }, { contentType: true }]) {
      expect(() => parseTicketRequest(bad), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'OSS_CB_ERR_TICKET_REQUEST_INVALID' }))
    }
  })

  it('pin a callback body that carries the ticket and every field the binding checks', () => {
    const names = parseCallbackTemplate(TICKET_CALLBACK_BODY).flatMap((p) => ('variable' in p ? [p.variable] : []))
    expect(names).toEqual(expect.arrayContaining(['bucket', 'object', 'size', 'x:ticket']))
  })

  it('never repeat an id or a generated key', async () => {
    const tickets = createUploadTickets(base)
    const issued = await Promise.all(Array.from({ length: 200 }, () => tickets.issue({ filename: 'same.png' })))
    expect(new Set(issued.map((t) => t.ticket)).size).toBe(200)
    expect(new Set(issued.map((t) => t.key)).size).toBe(200)
  })

  it('keep a sanitised base name of the file, never its directories', async () => {
    const tickets = createUploadTickets(base)
    const cases: Array<[string, RegExp]> = [
      ['C:\\Users\\me\\photo.png', /\/photo\.png$/],
      ['../../etc/passwd', /\/passwd$/],
      ['.hidden', /\/hidden$/],
      ['a<b>|c?.txt', /\/a_b_c_\.txt$/],
      ['', /\/file$/],
      ['...', /\/file$/]
    ]
    for (const [filename, expected] of cases) {
      const { key } = await tickets.issue({ filename })
      expect(key, filename).toMatch(expected)
      expect(key.startsWith('uploads/')).toBe(true)
      expect(key.split('/')).toHaveLength(3)
    }
  })
})
