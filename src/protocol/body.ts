import { ossError } from '../errors.js'

/** The two body types OSS can send, by the `callbackBodyType` the uploader chose. */
export type CallbackBodyType = 'form' | 'json'

export const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded'
export const JSON_CONTENT_TYPE = 'application/json'

/**
 * OSS's system variables and how each is typed. The simulator builds bodies
 * from this table and the receiver parses them with it: one definition for both.
 * `crc64` is a string because an unsigned 64-bit value does not fit a JS number.
 */
export const SYSTEM_VARIABLES = Object.freeze({
  bucket: 'string',
  object: 'string',
  etag: 'string',
  size: 'number',
  mimeType: 'string',
  'imageInfo.height': 'number',
  'imageInfo.width': 'number',
  'imageInfo.format': 'string',
  crc64: 'string',
  contentMd5: 'string',
  vpcId: 'string',
  clientIp: 'string',
  reqId: 'string',
  operation: 'string'
} as const)

export type SystemVariableName = keyof typeof SYSTEM_VARIABLES

/** The system fields of a callback, typed. An absent or empty field is `undefined`. */
export interface CallbackSystemFields {
  bucket?: string
  object?: string
  /** Upper-case hex, no quotes. */
  etag?: string
  /** Bytes; the whole object for multipart uploads. */
  size?: number
  mimeType?: string
  /** Empty (so `undefined`) for anything that is not an image. */
  imageInfo: { height?: number, width?: number, format?: string }
  /** CRC-64/XZ as an unsigned decimal string. */
  crc64?: string
  /** Base64 MD5; empty for multipart uploads. */
  contentMd5?: string
  vpcId?: string
  clientIp?: string
  reqId?: string
  /** `PutObject`, `PostObject` or `CompleteMultipartUpload`. */
  operation?: string
}

/** A verified body, parsed. */
export interface ParsedCallbackBody {
  type: CallbackBodyType
  /**
   * Every top-level field as sent. Form fields are strings; JSON fields keep
   * their JSON types. A prototype-free object: `__proto__` is an ordinary key here.
   */
  fields: Record<string, unknown>
  /** The system variables, typed, read from fields named after them. */
  system: CallbackSystemFields
  /** Custom variables: fields named `x:<name>`, keyed with the prefix, values as strings. */
  vars: Record<string, string>
}

/** The body type for a `Content-Type` header value, or `undefined` for anything else. */
export function bodyTypeOf (contentType: string | undefined): CallbackBodyType | undefined {
  if (contentType === undefined) return undefined
  const semi = contentType.indexOf(';')
  const media = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  if (media === FORM_CONTENT_TYPE) return 'form'
  if (media === JSON_CONTENT_TYPE) return 'json'
  return undefined
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function decodeFormComponent (s: string): string {
  return decodeURIComponent(s.includes('+') ? s.replaceAll('+', ' ') : s)
}

/** Parses `a=1&b=2`; a space may come as `+` or `%20`. The first of repeated names wins. */
function parseForm (text: string): Record<string, unknown> {
  const fields: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  if (text.length === 0) return fields
  for (const part of text.split('&')) {
    if (part.length === 0) continue
    const eq = part.indexOf('=')
    const name = decodeFormComponent(eq === -1 ? part : part.slice(0, eq))
    const value = eq === -1 ? '' : decodeFormComponent(part.slice(eq + 1))
    if (!(name in fields)) fields[name] = value
  }
  return fields
}

function parseJson (text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text)
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError('JSON callback body is not an object')
  }
  // Copy into a prototype-free object so that later lookups never reach Object.prototype.
  return Object.assign(Object.create(null) as Record<string, unknown>, value)
}

function asText (v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : v
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  return undefined
}

function asCount (v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined
  if (typeof v === 'string' && /^\d{1,15}$/.test(v)) return Number(v)
  return undefined
}

function lookup (fields: Record<string, unknown>, name: string): unknown {
  const v = fields[name]
  if (v !== undefined || !name.startsWith('imageInfo.')) return v
  // JSON templates may nest image fields: {"imageInfo":{"height":...}}.
  const nested = fields.imageInfo
  if (nested !== null && typeof nested === 'object' && !Array.isArray(nested)) {
    const key = name.slice('imageInfo.'.length)
    return Object.hasOwn(nested, key) ? (nested as Record<string, unknown>)[key] : undefined
  }
  return undefined
}

function readSystem (fields: Record<string, unknown>): CallbackSystemFields {
  return {
    bucket: asText(fields.bucket),
    object: asText(fields.object),
    etag: asText(fields.etag),
    size: asCount(fields.size),
    mimeType: asText(fields.mimeType),
    imageInfo: {
      height: asCount(lookup(fields, 'imageInfo.height')),
      width: asCount(lookup(fields, 'imageInfo.width')),
      format: asText(lookup(fields, 'imageInfo.format'))
    },
    crc64: asText(fields.crc64),
    contentMd5: asText(fields.contentMd5),
    vpcId: asText(fields.vpcId),
    clientIp: asText(fields.clientIp),
    reqId: asText(fields.reqId),
    operation: asText(fields.operation)
  }
}

function readVars (fields: Record<string, unknown>): Record<string, string> {
  const vars: Record<string, string> = Object.create(null) as Record<string, string>
  for (const name in fields) {
    if (!name.startsWith('x:')) continue
    const v = fields[name]
    if (typeof v === 'string') vars[name] = v
    else if (typeof v === 'number' || typeof v === 'boolean') vars[name] = String(v)
  }
  return vars
}

/**
 * Parses a body whose signature has already been verified. A body that does not
 * parse for its type (OSS never checks that a template yields valid JSON) is
 * `OSS_CB_ERR_BODY_UNPARSEABLE`, never a crash. Invalid UTF-8 is refused too.
 */
export function parseCallbackBody (raw: Uint8Array, type: CallbackBodyType): ParsedCallbackBody {
  let fields: Record<string, unknown>
  try {
    const text = utf8.decode(raw)
    fields = type === 'form' ? parseForm(text) : parseJson(text)
  } catch (cause) {
    throw ossError('BODY_UNPARSEABLE', `body is not valid ${type === 'form' ? 'urlencoded' : 'JSON object'}`, cause)
  }
  return { type, fields, system: readSystem(fields), vars: readVars(fields) }
}

/** One piece of a callback body template: literal text or a `${name}` placeholder. */
export type TemplatePart = { text: string } | { variable: string }

// A placeholder name: no white space and none of the template's own syntax characters.
const VARIABLE_NAME = /^[^\s${}]+$/

/**
 * Splits a `callbackBody` template into text and `${name}` placeholders. A `$`
 * not followed by `{` is text. Throws `OSS_CB_ERR_INVALID_CALLBACK_PARAM` for bad
 * placeholder syntax (an unclosed `${`, an empty or malformed name), which OSS
 * answers with 400. Whether a name is known is checked elsewhere.
 */
export function parseCallbackTemplate (template: string): TemplatePart[] {
  const parts: TemplatePart[] = []
  let i = 0
  let text = ''
  while (i < template.length) {
    const open = template.indexOf('${', i)
    if (open === -1) {
      text += template.slice(i)
      break
    }
    text += template.slice(i, open)
    const close = template.indexOf('}', open + 2)
    if (close === -1) throw ossError('INVALID_CALLBACK_PARAM', 'The callbackBody has an unclosed ${ placeholder.')
    const name = template.slice(open + 2, close)
    if (!VARIABLE_NAME.test(name)) throw ossError('INVALID_CALLBACK_PARAM', 'The callbackBody has a malformed ${} placeholder.')
    if (text !== '') parts.push({ text })
    text = ''
    parts.push({ variable: name })
    i = close + 1
  }
  if (text !== '') parts.push({ text })
  return parts
}

/** True when `name` is one of OSS's system variables. */
export function isSystemVariable (name: string): name is SystemVariableName {
  return Object.hasOwn(SYSTEM_VARIABLES, name)
}

/** The values a body is built from. */
export interface CallbackBodyValues {
  /** System variables; an absent or empty value expands to empty (to `""` for a JSON string). */
  system: Readonly<Partial<Record<SystemVariableName, string | number | undefined>>>
  /** Custom variables keyed `x:name`; an undefined one expands to empty. */
  vars?: Readonly<Record<string, string>>
}

function formEncode (value: string): string {
  // encodeURIComponent leaves !'()* bare; OSS's encoder is not documented for them, and
  // any form parser reads them either way. Space becomes %20 (OSS may send +: both parse).
  return encodeURIComponent(value)
}

function expand (name: string, values: CallbackBodyValues, type: CallbackBodyType): string {
  if (isSystemVariable(name)) {
    const raw = values.system[name]
    const value = raw === undefined ? '' : String(raw)
    if (type === 'form') return formEncode(value)
    if (SYSTEM_VARIABLES[name] === 'number') return value
    return JSON.stringify(value)
  }
  if (name.startsWith('x:')) {
    const value = values.vars !== undefined && Object.hasOwn(values.vars, name) ? values.vars[name] : undefined
    if (value === undefined) return ''
    return type === 'form' ? formEncode(value) : JSON.stringify(value)
  }
  // An unknown name: what OSS does is not documented; the simulator expands it to empty.
  return ''
}

/**
 * Builds a callback body from a `callbackBody` template as OSS does: textual
 * substitution, never a re-serialisation. For `form`, each value is URL-encoded
 * (`/` becomes `%2F`, an empty value stays empty). For `json`, string values
 * become JSON string literals with their quotes, numbers (`size`, image width and
 * height) are inserted bare, and the result is never checked to be valid JSON.
 * Undefined `x:` variables expand to empty. Throws on bad `${}` syntax.
 */
export function buildCallbackBody (template: string, values: CallbackBodyValues, type: CallbackBodyType): string {
  let out = ''
  for (const part of parseCallbackTemplate(template)) {
    out += 'text' in part ? part.text : expand(part.variable, values, type)
  }
  return out
}
