// Child process: per-callback CPU cost without HTTP, beside OpenSSL's own RSA verify rate on this machine.
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { promisify } from 'node:util'
import { createCallbackVerifier } from '../dist/index.js'
import { buildStringToSign, splitRequestTarget } from '../dist/protocol/string-to-sign.js'
import { signCallback } from '../dist/protocol/signature.js'
import { createForgeVerifier, nodeCryptoVerifier } from '../dist/receiver/signature-verifier.js'
import { boundLifetime, CALLBACK_BODY, CALLBACK_PATH, config, signedCallback } from './common.js'

const { seconds, opensslSeconds, lifetimeMs } = config()
boundLifetime(lifetimeMs)

async function opsPerSec (fn, ms) {
  const run = async (budget) => {
    let ops = 0
    const start = performance.now()
    let now = start
    while (now - start < budget) {
      for (let i = 0; i < 64; i++) await fn()
      ops += 64
      now = performance.now()
    }
    return ops / ((now - start) / 1000)
  }
  await run(ms / 10)
  return Math.round(await run(ms))
}

const ms = seconds * 1000
const target = splitRequestTarget(CALLBACK_PATH)
const results = { node: {}, openssl: {} }

for (const bits of [512, 1024, 2048]) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 })
  const data = buildStringToSign(target, CALLBACK_BODY)
  const signature = Buffer.from(signCallback(privateKey, data), 'base64')
  if (!nodeCryptoVerifier(publicKey, data, signature)) throw new Error('micro: signature does not verify')
  const row = {}
  row.stringToSignAndVerify = await opsPerSec(() => nodeCryptoVerifier(publicKey, buildStringToSign(target, CALLBACK_BODY), signature), ms)
  if (bits === 512) {
    row.verifyOnly = await opsPerSec(() => nodeCryptoVerifier(publicKey, data, signature), ms)
    const forge = createForgeVerifier()
    row.forgeStringToSignAndVerify = await opsPerSec(() => forge(publicKey, buildStringToSign(target, CALLBACK_BODY), signature), ms)
    // The whole framework-free verifier (headers, key URL policy, key lookup, verify, parse), no HTTP.
    const keyUrl = 'http://127.0.0.1:9/bench.pem'
    const options = { keyOrigins: ['http://127.0.0.1:9'], keys: { pinned: new Map([[keyUrl, publicKey]]) } }
    const cb = signedCallback(privateKey, keyUrl)
    const request = { url: cb.path, headers: cb.headers, body: CALLBACK_BODY }
    // One at a time, awaited: with batching on, each would also wait for its own event-loop turn.
    const oneByOne = createCallbackVerifier({ ...options, batchVerifications: false })
    row.verifierVerify = await opsPerSec(() => oneByOne.verify(request), ms)
    // 64 started together, as a busy server starts them: one batch, one event-loop turn.
    const batched = createCallbackVerifier(options)
    row.verifierVerifyBatch64 = Math.round(64 * await opsPerSec(() => Promise.all(Array.from({ length: 64 }, () => batched.verify(request))), ms))
  }
  results.node[`rsa${bits}`] = row
}

// `openssl speed` prints: "rsa  512 bits 0.000046s 0.000003s  21739.1 333333.3" (sign, verify, sign/s, verify/s).
try {
  const { stdout } = await promisify(execFile)('openssl', ['speed', '-seconds', String(opensslSeconds), 'rsa512', 'rsa1024'], { timeout: 120_000 })
  for (const m of stdout.matchAll(/^rsa\s+(\d+)\s+bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)/gm)) {
    results.openssl[`rsa${m[1]}`] = { signPerSec: Number(m[2]), verifyPerSec: Number(m[3]) }
  }
} catch (err) {
  results.openssl = { error: String(err.message ?? err).slice(0, 200) }
}

process.send({ type: 'result', result: results }, () => process.exit(0))
