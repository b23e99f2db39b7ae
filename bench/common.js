// Shared by the bench processes: the callback every scenario receives, and child-process plumbing.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { signCallback } from '../dist/protocol/signature.js'
import { buildStringToSign, splitRequestTarget } from '../dist/protocol/string-to-sign.js'

export const CALLBACK_PATH = '/oss/callback'

// What OSS sends for a JPEG uploaded with a PutObject callback and two custom variables: 252 bytes.
export const CALLBACK_BODY = Buffer.from(
  'bucket=examplebucket&object=uploads%2F2026%2F11%2Fphoto-0042.jpg' +
  '&etag=5B3C1A2E053D763E1B002CC607C5A0FE&size=2483751&mimeType=image%2Fjpeg' +
  '&imageInfo.height=3024&imageInfo.width=4032&imageInfo.format=jpg' +
  '&crc64=3918732117483956209&x%3Auid=1042&x%3Atag=cat'
)

/** Headers and body of a callback signed by `privateKey`, naming `keyUrl`, exactly as OSS signs one. */
export function signedCallback (privateKey, keyUrl) {
  const data = buildStringToSign(splitRequestTarget(CALLBACK_PATH), CALLBACK_BODY)
  return {
    path: CALLBACK_PATH,
    body: CALLBACK_BODY.toString('latin1'),
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: signCallback(privateKey, data),
      'x-oss-pub-key-url': Buffer.from(keyUrl).toString('base64'),
      'x-oss-request-id': '6745A1B2C3D4E5F601234567',
      'user-agent': 'aliyun-oss-callback'
    }
  }
}

/** Every child dies with its parent, and in any case after `ms`. */
export function boundLifetime (ms) {
  process.on('disconnect', () => process.exit(0))
  setTimeout(() => {
    process.stderr.write(`bench child ${process.argv[1]} hit its ${ms} ms limit\n`)
    process.exit(3)
  }, ms).unref()
}

/** Forks a bench script with a JSON config; stdout of the child goes to our stderr so that our stdout stays JSON. */
export function forkChild (script, config, execArgv = []) {
  const child = fork(fileURLToPath(new URL(script, import.meta.url)), [], {
    env: { ...process.env, BENCH_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 2, 2, 'ipc'],
    execArgv
  })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  return { child, exited }
}

/** Next IPC message of `type` from `child`, or an error after `ms`. */
export function nextMessage (child, type, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no ${type} message within ${ms} ms`)) }, ms)
    const onMessage = (m) => { if (m?.type === type) { cleanup(); resolve(m) } }
    const onExit = (code) => { cleanup(); reject(new Error(`child exited (${code}) before sending ${type}`)) }
    function cleanup () { clearTimeout(timer); child.off('message', onMessage); child.off('exit', onExit) }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** Sends `message` and waits for the answer of the same type. */
export function ask (child, message, ms = 30_000) {
  const answer = nextMessage(child, message.type, ms)
  child.send(message)
  return answer
}

export function config () {
  return JSON.parse(process.env.BENCH_CONFIG ?? '{}')
}
