import { afterAll, beforeAll, expect, it } from 'vitest'
import { aliOssClient, startStack, type Stack } from './stack.js'

let stack: Stack
beforeAll(async () => { stack = await startStack() })
afterAll(async () => { await stack.close() })

it('ali-oss put with callback', async () => {
  const client = aliOssClient(stack.sim)
  const r = await client.put('dir/中文 a+b.txt', Buffer.from('hello'), {
    callback: { url: stack.callbackUrl, body: 'bucket=${bucket}&object=${object}&size=${size}&v=${x:v}', customValue: { v: 'x y' } }
  } as never)
  console.log(r.res.status, r.res.headers, (r as { data?: unknown }).data)
  const g = await client.get('dir/中文 a+b.txt')
  expect(g.content.toString()).toBe('hello')
})
