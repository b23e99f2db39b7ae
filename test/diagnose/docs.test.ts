import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  AUTHORIZATION_DROPPED_HINT, bodyTooLargeHint, CONTENT_TYPE_HINT, GENERAL_HINT, GET_ON_CALLBACK_PATH_HINT, keyUrlHint
} from '../../src/diagnose/hints.js'
import { variantsOf } from '../../src/diagnose/variants.js'
import { compileKeyUrlPolicy } from '../../src/protocol/key-url.js'
import { ROOT } from '../helpers/process.js'

const flat = (s: string): string => s.replace(/\s+/g, ' ')
const page = flat(readFileSync(join(ROOT, 'docs', 'refused-callbacks.md'), 'utf8'))

function hintOf (name: string, url: string, headers: Record<string, string> = {}, body = 'a=1', publicPath?: string): string {
  const v = variantsOf({ url, headers, body: Buffer.from(body), publicPath }).find((x) => x.name === name)
  if (v === undefined) throw new Error(`no variant ${name}`)
  return v.hint
}

describe('docs/refused-callbacks.md is built from the hints', () => {
  const b64 = (s: string): string => Buffer.from(s).toString('base64')
  const policy = compileKeyUrlPolicy(['http://127.0.0.1:9'])
  const hints: Array<[string, () => string]> = [
    ['x-forwarded-prefix', () => hintOf('x-forwarded-prefix', '/oss/callback', { 'x-forwarded-prefix': '/api' })],
    ['x-original-uri', () => hintOf('x-original-uri', '/oss/callback', { 'x-original-uri': '/api/oss/callback' })],
    ['query', () => hintOf('x-original-uri', '/cb?a=1&b=2', { 'x-original-uri': '/cb?a=1' })],
    ['public-path', () => hintOf('public-path', '/oss/callback', {}, 'a=1', '/api/oss/callback')],
    ['empty-query-mark', () => hintOf('empty-query-mark', '/cb')],
    ['plus-to-space', () => hintOf('plus-to-space', '/oss/my+callback')],
    ['crlf-to-lf', () => hintOf('crlf-to-lf', '/cb', {}, 'a\r\nb')],
    ['general', () => GENERAL_HINT],
    ['authorization', () => AUTHORIZATION_DROPPED_HINT],
    ['oss key host', () => keyUrlHint(b64('https://gosspublic.alicdn.com/callback_pub_key_v1.pem'), policy)],
    ['simulator key', () => keyUrlHint(b64('http://127.0.0.1:8090/callback_pub_key_sim_0123456789abcdef.pem'), policy)],
    ['forged key', () => keyUrlHint(b64('https://evil.example/k.pem'), policy)],
    ['get', () => GET_ON_CALLBACK_PATH_HINT],
    ['content type', () => CONTENT_TYPE_HINT],
    ['body limit', () => bodyTooLargeHint(65536)]
  ]
  for (const [what, hint] of hints) {
    it(`quotes the ${what} hint`, () => { expect(page).toContain(flat(hint())) })
  }
  for (const [name, url, body] of [['space-to-plus', '/oss/my%20callback', 'a=1'], ['trailing-newline-added', '/cb', 'a=1'], ['trailing-newline-removed', '/cb', 'a=1\n']] as const) {
    it(`quotes the start of the ${name} hint`, () => {
      const hint = hintOf(name, url, {}, body)
      expect(page).toContain(flat(hint.slice(0, hint.indexOf(name === 'space-to-plus' ? ' (' : ': ') + 1)))
    })
  }
})
