import { readFileSync } from 'node:fs'

/** The real OSS-signed callback from the official docs (copied from ../shared/fixtures). */
export interface DocCallbackFixture {
  method: string
  path: string
  query: string
  headers: Record<string, string>
  body: string
  stringToSign: string
  pubKeyUrl: string
  publicKeyPem: string
}

export function readFixture (name: string): string {
  return readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')
}

export const docCallback = JSON.parse(readFixture('oss-doc-callback.json')) as DocCallbackFixture
export const productionKeyPem = readFixture('callback_pub_key_v1.pem')
