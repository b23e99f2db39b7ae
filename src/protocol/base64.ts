import { ossError } from '../errors.js'

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Decodes standard, padded base64 and refuses anything else: other alphabets,
 * white space, missing padding, non-zero trailing bits, an empty value or one
 * longer than `maxChars`. Node's own decoder skips invalid characters, which
 * would let two different header values verify as the same bytes.
 */
export function decodeStrictBase64 (value: string, maxChars: number): Buffer {
  if (value.length === 0 || value.length > maxChars || !STRICT_BASE64.test(value)) {
    throw ossError('BAD_BASE64', 'not strict base64')
  }
  const bytes = Buffer.from(value, 'base64')
  // Re-encoding catches non-zero padding bits ("QR==" and "QQ==" both decode to "A").
  if (bytes.toString('base64') !== value) throw ossError('BAD_BASE64', 'non-canonical base64')
  return bytes
}
