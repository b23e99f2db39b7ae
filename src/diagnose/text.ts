/**
 * Escapes bytes so that every one shows: printable ASCII as itself, `\\` doubled,
 * `\r` `\n` `\t` by name and every other byte as `\xNN`.
 */
export function escapeBytes (bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) {
    if (b === 0x5c) out += '\\\\'
    else if (b === 0x0a) out += '\\n'
    else if (b === 0x0d) out += '\\r'
    else if (b === 0x09) out += '\\t'
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b)
    else out += `\\x${b.toString(16).padStart(2, '0')}`
  }
  return out
}

/**
 * A request's own text (a path, a header value) made safe to put in a hint:
 * every byte shown, at most `max` characters. Hints reach logs and terminals.
 */
export function shown (text: string, max = 200): string {
  let escaped = ''
  for (const ch of text) {
    const c = ch.codePointAt(0) as number
    escaped += c > 0xff ? `\\u{${c.toString(16)}}` : escapeBytes(Uint8Array.of(c))
  }
  return escaped.length <= max ? escaped : `${escaped.slice(0, max)}…`
}
