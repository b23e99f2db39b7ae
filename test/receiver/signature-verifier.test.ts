import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { signCallback } from '../../src/protocol/signature.js'
import { createForgeVerifier, nodeCryptoVerifier, passesSelfTest, selectSignatureVerifier, type SignatureVerifier } from '../../src/receiver/signature-verifier.js'
import { testKeyPair } from '../helpers/keys.js'

const refusingOpenSsl: SignatureVerifier = () => { throw new Error('error:0308010C:digital envelope routines::unsupported') }

describe('signature verifiers', () => {
  const forge = createForgeVerifier()

  it('node:crypto and node-forge agree on random messages and keys', () => {
    for (const bits of [512, 1024, 2048] as const) {
      const { privateKey, publicKey } = testKeyPair(bits)
      for (let i = 0; i < 40; i++) {
        const data = randomBytes(i * 7)
        const sig = Buffer.from(signCallback(privateKey, data), 'base64')
        const flipped = Buffer.from(sig)
        flipped[i % flipped.length]! ^= 1 << (i % 8)
        const otherData = Buffer.concat([data, Buffer.from([i])])
        for (const [d, s, expected] of [[data, sig, true], [data, flipped, false], [otherData, sig, false]] as const) {
          expect(nodeCryptoVerifier(publicKey, d, s)).toBe(expected)
          expect(forge(publicKey, d, s)).toBe(expected)
        }
      }
    }
  })

  it('both refuse a signature of the wrong length', () => {
    const { publicKey } = testKeyPair(512)
    expect(nodeCryptoVerifier(publicKey, Buffer.from('x'), Buffer.alloc(63))).toBe(false)
    expect(forge(publicKey, Buffer.from('x'), Buffer.alloc(65))).toBe(false)
  })

  it('both pass the self-test on the real OSS callback', () => {
    expect(passesSelfTest(nodeCryptoVerifier)).toBe(true)
    expect(passesSelfTest(forge)).toBe(true)
  })

  it('selects node:crypto where OpenSSL allows RSA-MD5', () => {
    expect(selectSignatureVerifier().name).toBe('node:crypto')
  })

  it('falls back to node-forge where OpenSSL refuses MD5 or 512-bit RSA', () => {
    const selected = selectSignatureVerifier(refusingOpenSsl)
    expect(selected.name).toBe('node-forge')
    const { privateKey, publicKey } = testKeyPair(512)
    const data = Buffer.from('/cb\nbucket=b')
    expect(selected.verify(publicKey, data, Buffer.from(signCallback(privateKey, data), 'base64'))).toBe(true)
  })

  it('does not select a verifier that accepts everything', () => {
    expect(selectSignatureVerifier(() => true).name).toBe('node-forge')
  })
})
