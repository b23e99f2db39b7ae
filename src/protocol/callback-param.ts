import { invalidOption, ossError } from '../errors.js'
import {
  FORM_CONTENT_TYPE, isSystemVariable, JSON_CONTENT_TYPE, parseCallbackTemplate,
  type CallbackBodyType
} from './body.js'

/**
 * The `callback` and `callback-var` upload parameters (protocol doc §2): the
 * uploader encodes them with {@link encodeCallbackParam}, checked against OSS's
 * rules before anything is sent; the simulator decodes them with
 * {@link decodeCallbackParam}, which refuses what OSS refuses with 400.
 */

/** The two `callbackBodyType` values OSS knows; it becomes the callback's `Content-Type`. */
export type CallbackBodyContentType = typeof FORM_CONTENT_TYPE | typeof JSON_CONTENT_TYPE

/** The JSON object that `callback` carries, base64-encoded. */
export interface CallbackParam {
  /** One URL, or up to 5 separated by `;`, tried in order. Non-ASCII must be percent-encoded. */
  callbackUrl: string
  /** `Host` header of the callback. Default: the URL's host. */
  callbackHost?: string
  /** Body template with `${bucket}`, `${object}`, …, `${x:name}` placeholders. Must not be empty. */
  callbackBody: string
  /** Default `application/x-www-form-urlencoded`. */
  callbackBodyType?: CallbackBodyContentType
  /** Send TLS SNI to an https callbackUrl. Default false. */
  callbackSNI?: boolean
}

/** Custom variables, `name -> value`; names get the `x:` prefix when it is missing. */
export type CallbackVars = Readonly<Record<string, string>>

/** The encoded parameters, ready for `x-oss-callback` / `x-oss-callback-var`, the query or form fields. */
export interface EncodedCallbackParam {
  /** Standard padded base64 of the callback JSON. */
  callback: string
  /** Standard padded base64 of the variables JSON; absent when there are no variables. */
  callbackVar?: string
}

/** Options of {@link encodeCallbackParam} and {@link decodeCallbackParam}. */
export interface CallbackParamOptions {
  /** Refuse private, loopback and IPv6 callback hosts as real OSS does. Default false (local work). */
  strict?: boolean
}

/** A `callback` parameter as the simulator uses it. */
export interface DecodedCallbackParam {
  /** The URLs to try in order (1 to 5), a scheme-less URL read as `http://`. */
  urls: URL[]
  /** The `Host` header to send, when callbackHost was given. */
  host?: string
  /** The body template, checked for `${}` syntax. */
  template: string
  bodyType: CallbackBodyType
  contentType: CallbackBodyContentType
  sni: boolean
  /** Custom variables from `callback-var`, keyed `x:name`. */
  vars: Record<string, string>
}

/**
 * Default `callbackBody` templates with the common system variables. Image fields
 * are left out of the JSON one: they are inserted bare and are empty for anything
 * that is not an image, which would make the JSON invalid (protocol doc §3).
 */
export const DEFAULT_CALLBACK_BODY: Readonly<Record<CallbackBodyType, string>> = Object.freeze({
  form: 'bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}&crc64=${crc64}' +
    '&contentMd5=${contentMd5}&operation=${operation}&reqId=${reqId}',
  json: '{"bucket":${bucket},"object":${object},"etag":${etag},"size":${size},"mimeType":${mimeType},"crc64":${crc64},' +
    '"contentMd5":${contentMd5},"operation":${operation},"reqId":${reqId}}'
})

/**
 * The callback body used when none is given: {@link DEFAULT_CALLBACK_BODY} for the
 * type plus every custom variable, named with its `x:` prefix (`&x:uid=${x:uid}`,
 * or `,"x:uid":${x:uid}` in JSON).
 */
export function defaultCallbackBody (bodyType: CallbackBodyType, varNames: readonly string[] = []): string {
  const vars = varNames.map((n) => (n.startsWith('x:') ? n : `x:${n}`))
  const base = DEFAULT_CALLBACK_BODY[bodyType]
  if (vars.length === 0) return base
  if (bodyType === 'json') return `${base.slice(0, -1)},${vars.map((n) => `${JSON.stringify(n)}:\${${n}}`).join(',')}}`
  return `${base}&${vars.map((n) => `${n}=\${${n}}`).join('&')}`
}

/** At most this many URLs in `callbackUrl`. */
export const MAX_CALLBACK_URLS = 5
/** `callback` and `callback-var` are each at most 5 KB, encoded. */
export const MAX_CALLBACK_PARAM_CHARS = 5 * 1024

// What OSS answers, as the reason of OSS_CB_ERR_INVALID_CALLBACK_PARAM. Only the first is
// OSS's exact wording (seen in real replies); the others say the same thing in our words.
export const CALLBACK_PARAM_MESSAGES = Object.freeze({
  notJson: 'The callback configuration is not json format.',
  varNotJson: 'The callback-var configuration is not json format.',
  tooLong: 'The callback configuration is longer than 5 KB.',
  varTooLong: 'The callback-var configuration is longer than 5 KB.',
  tooManyUrls: 'The callbackUrl has more than 5 URLs.',
  badUrl: 'The callbackUrl is not a valid URL.',
  badPort: 'The callbackUrl has an invalid port.',
  privateIp: 'The callbackUrl host is a private, loopback or IPv6 address.',
  emptyUrl: 'The callbackUrl is empty.',
  emptyBody: 'The callbackBody is empty.',
  badBodyType: 'The callbackBodyType is not application/x-www-form-urlencoded or application/json.',
  badHost: 'The callbackHost is not a valid host.',
  badSni: 'The callbackSNI is not a boolean.',
  badVarName: 'A callback variable name must be lower case, start with x: and use a-z 0-9 _ - . only.',
  badVarValue: 'A callback variable value must be a string.',
  unknownVariable: 'The callbackBody uses a variable that is neither a system variable nor x:.'
} as const)

function invalid (reason: string): Error {
  return ossError('INVALID_CALLBACK_PARAM', reason)
}

const VAR_NAME = /^x:[a-z0-9_.-]+$/

/** `name` with the `x:` prefix added when missing; throws unless it is lower case `x:[a-z0-9_.-]+`. */
export function normalizeCallbackVarName (name: string): string {
  const full = name.startsWith('x:') ? name : `x:${name}`
  if (!VAR_NAME.test(full)) throw invalid(CALLBACK_PARAM_MESSAGES.badVarName)
  return full
}

const PRIVATE_V4: ReadonlyArray<readonly [number, number]> = [
  [0x00000000, 8], [0x0a000000, 8], [0x64400000, 10], [0x7f000000, 8], [0xa9fe0000, 16], [0xac100000, 12],
  [0xc0000000, 24], [0xc0a80000, 16], [0xc6120000, 15], [0xe0000000, 4], [0xf0000000, 4]
]

/** True for a dotted IPv4 address that real OSS would call back: not private, loopback, link-local, CGNAT, multicast or reserved. */
export function isPublicIpv4 (address: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address)
  if (m === null) return false
  const octets = m.slice(1).map(Number)
  if (octets.some((o) => o > 255)) return false
  const n = (((octets[0] as number) << 24) | ((octets[1] as number) << 16) | ((octets[2] as number) << 8) | (octets[3] as number)) >>> 0
  return !PRIVATE_V4.some(([base, bits]) => (n >>> (32 - bits)) === (base >>> (32 - bits)))
}

function refusedHostWhenStrict (hostname: string): boolean {
  if (hostname.startsWith('[')) return true
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return true
  if (/^[\d.]+$/.test(hostname)) return !isPublicIpv4(hostname)
  return false
}

// Printable ASCII only: OSS wants non-ASCII percent-encoded, and a space would split the request line.
const URL_CHARS = /^[\x21-\x7e]+$/

function parseCallbackUrls (text: string, strict: boolean): URL[] {
  const pieces = text.split(';').map((s) => s.trim()).filter((s) => s !== '')
  if (pieces.length === 0) throw invalid(CALLBACK_PARAM_MESSAGES.emptyUrl)
  if (pieces.length > MAX_CALLBACK_URLS) throw invalid(CALLBACK_PARAM_MESSAGES.tooManyUrls)
  return pieces.map((piece) => {
    if (!URL_CHARS.test(piece)) throw invalid(CALLBACK_PARAM_MESSAGES.badUrl)
    // OSS's own examples give scheme-less URLs (`121.101.166.30/test.php`): they mean http.
    const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(piece) ? piece : `http://${piece}`
    const port = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*?:([^/?#@\]]*)(?:[/?#]|$)/.exec(withScheme)?.[1]
    if (port !== undefined && !/^\d{1,5}$/.test(port)) throw invalid(CALLBACK_PARAM_MESSAGES.badPort)
    let url: URL
    try {
      url = new URL(withScheme)
    } catch {
      throw invalid(port !== undefined && Number(port) > 65535 ? CALLBACK_PARAM_MESSAGES.badPort : CALLBACK_PARAM_MESSAGES.badUrl)
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' ||
        url.username !== '' || url.password !== '') {
      throw invalid(CALLBACK_PARAM_MESSAGES.badUrl)
    }
    if (port !== undefined && Number(port) === 0) throw invalid(CALLBACK_PARAM_MESSAGES.badPort)
    if (strict && refusedHostWhenStrict(url.hostname)) throw invalid(CALLBACK_PARAM_MESSAGES.privateIp)
    return url
  })
}

const HOST_CHARS = /^[A-Za-z0-9.:[\]-]+$/

/**
 * Checks a template: `${}` syntax, and (when `knownVars` is given) that every
 * placeholder is a system variable, an `x:` variable, or in `knownVars`.
 */
function checkTemplate (template: string, requireKnown: boolean): void {
  for (const part of parseCallbackTemplate(template)) {
    if (!('variable' in part)) continue
    if (requireKnown && !isSystemVariable(part.variable) && !VAR_NAME.test(part.variable)) {
      throw invalid(CALLBACK_PARAM_MESSAGES.unknownVariable)
    }
  }
}

function contentTypeOf (value: unknown): CallbackBodyContentType {
  if (value === undefined) return FORM_CONTENT_TYPE
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase()
    if (v === FORM_CONTENT_TYPE || v === JSON_CONTENT_TYPE) return v
  }
  throw invalid(CALLBACK_PARAM_MESSAGES.badBodyType)
}

/**
 * Validates and encodes the callback parameter. Checks, each an
 * `OSS_CB_ERR_INVALID_CALLBACK_PARAM` whose `reason` says which: at most 5 URLs,
 * each http(s) with a valid port and ASCII only; a non-empty body; every `${}`
 * placeholder well formed and a system variable or an `x:` variable; variable
 * names lower case (the `x:` prefix is added when missing), values strings; each
 * encoded value at most 5 KB. With `strict`, private and loopback hosts are refused too.
 */
export function encodeCallbackParam (param: CallbackParam, vars: CallbackVars = {}, options: CallbackParamOptions = {}): EncodedCallbackParam {
  if (typeof param.callbackUrl !== 'string') throw invalid(CALLBACK_PARAM_MESSAGES.emptyUrl)
  parseCallbackUrls(param.callbackUrl, options.strict === true)
  if (typeof param.callbackBody !== 'string' || param.callbackBody === '') throw invalid(CALLBACK_PARAM_MESSAGES.emptyBody)
  checkTemplate(param.callbackBody, true)
  const contentType = contentTypeOf(param.callbackBodyType)
  if (param.callbackHost !== undefined && (typeof param.callbackHost !== 'string' || !HOST_CHARS.test(param.callbackHost))) {
    throw invalid(CALLBACK_PARAM_MESSAGES.badHost)
  }
  if (param.callbackSNI !== undefined && typeof param.callbackSNI !== 'boolean') throw invalid(CALLBACK_PARAM_MESSAGES.badSni)

  const json: Record<string, string | boolean> = { callbackUrl: param.callbackUrl }
  if (param.callbackHost !== undefined) json.callbackHost = param.callbackHost
  json.callbackBody = param.callbackBody
  json.callbackBodyType = contentType
  if (param.callbackSNI !== undefined) json.callbackSNI = param.callbackSNI
  const callback = Buffer.from(JSON.stringify(json), 'utf8').toString('base64')
  if (callback.length > MAX_CALLBACK_PARAM_CHARS) throw invalid(CALLBACK_PARAM_MESSAGES.tooLong)

  const normalized: Record<string, string> = {}
  for (const [name, value] of Object.entries(vars)) {
    if (typeof value !== 'string') throw invalid(CALLBACK_PARAM_MESSAGES.badVarValue)
    normalized[normalizeCallbackVarName(name)] = value
  }
  if (Object.keys(normalized).length === 0) return { callback }
  const callbackVar = Buffer.from(JSON.stringify(normalized), 'utf8').toString('base64')
  if (callbackVar.length > MAX_CALLBACK_PARAM_CHARS) throw invalid(CALLBACK_PARAM_MESSAGES.varTooLong)
  return { callback, callbackVar }
}

// Tolerant base64 as a server reads it: standard or URL-safe alphabet, padding optional.
const LOOSE_BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/

function decodeJsonObject (b64: string, message: string): Record<string, unknown> {
  const text = b64.trim()
  if (text === '' || !LOOSE_BASE64.test(text) || text.replace(/=+$/, '').length % 4 === 1) throw invalid(message)
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(text, 'base64').toString('utf8'))
  } catch {
    throw invalid(message)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(message)
  return value as Record<string, unknown>
}

/**
 * Decodes `callback` (and `callback-var`) as OSS does, with OSS's 400 rules: not
 * base64 or not a JSON object ("The callback configuration is not json format."),
 * over 5 KB, over 5 URLs, a bad URL or port, an empty body, an unknown body type,
 * bad `${}` syntax; with `strict`, private, loopback and IPv6 hosts. Returns
 * `undefined` when `callbackUrl` is absent or empty: OSS then makes no callback.
 * Variables whose names are not lower case `x:` names are ignored, as OSS
 * documents only those. Unknown placeholder names are not refused (OSS's
 * behaviour is not documented); the body builder expands them to empty.
 */
export function decodeCallbackParam (callbackB64: string, callbackVarB64?: string, options: CallbackParamOptions = {}): DecodedCallbackParam | undefined {
  if (callbackB64.length > MAX_CALLBACK_PARAM_CHARS) throw invalid(CALLBACK_PARAM_MESSAGES.tooLong)
  if (callbackVarB64 !== undefined && callbackVarB64.length > MAX_CALLBACK_PARAM_CHARS) throw invalid(CALLBACK_PARAM_MESSAGES.varTooLong)
  const json = decodeJsonObject(callbackB64, CALLBACK_PARAM_MESSAGES.notJson)
  const rawUrl = json.callbackUrl
  if (rawUrl === undefined || rawUrl === '') return undefined
  if (typeof rawUrl !== 'string') throw invalid(CALLBACK_PARAM_MESSAGES.badUrl)
  const urls = parseCallbackUrls(rawUrl, options.strict === true)

  const template = json.callbackBody
  if (typeof template !== 'string' || template === '') throw invalid(CALLBACK_PARAM_MESSAGES.emptyBody)
  checkTemplate(template, false)
  const contentType = contentTypeOf(json.callbackBodyType)

  let host: string | undefined
  if (json.callbackHost !== undefined && json.callbackHost !== '') {
    if (typeof json.callbackHost !== 'string' || !HOST_CHARS.test(json.callbackHost)) throw invalid(CALLBACK_PARAM_MESSAGES.badHost)
    host = json.callbackHost
  }
  let sni = false
  if (json.callbackSNI !== undefined) {
    if (json.callbackSNI === true || json.callbackSNI === 'true') sni = true
    else if (json.callbackSNI !== false && json.callbackSNI !== 'false') throw invalid(CALLBACK_PARAM_MESSAGES.badSni)
  }

  const vars: Record<string, string> = Object.create(null) as Record<string, string>
  if (callbackVarB64 !== undefined && callbackVarB64 !== '') {
    for (const [name, value] of Object.entries(decodeJsonObject(callbackVarB64, CALLBACK_PARAM_MESSAGES.varNotJson))) {
      if (!VAR_NAME.test(name)) continue
      if (typeof value === 'string') vars[name] = value
      else if (typeof value === 'number' || typeof value === 'boolean') vars[name] = String(value)
      else throw invalid(CALLBACK_PARAM_MESSAGES.badVarValue)
    }
  }
  return {
    urls,
    ...(host === undefined ? {} : { host }),
    template,
    bodyType: contentType === JSON_CONTENT_TYPE ? 'json' : 'form',
    contentType,
    sni,
    vars
  }
}

/**
 * Reads a command-line `--var name=value` into `[name, value]`: the value may hold `=` and may be empty.
 * Throws `OSS_CB_ERR_INVALID_OPTION` when there is no name, and the variable-name error of
 * {@link normalizeCallbackVarName} for a name OSS would refuse, so every command says the same.
 */
export function parseVarArgument (text: string): [string, string] {
  const eq = text.indexOf('=')
  if (eq <= 0) throw invalidOption(`--var: ${JSON.stringify(text)} is not name=value`)
  const name = text.slice(0, eq)
  normalizeCallbackVarName(name)
  return [name, text.slice(eq + 1)]
}
