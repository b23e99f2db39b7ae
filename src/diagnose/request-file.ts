/** A request read back from a capture file (or any raw HTTP request text). */
export interface ParsedRequest {
  method: string
  /** The raw request target. */
  url: string
  httpVersion: string
  /** Names and values alternating, as in the file. */
  rawHeaders: string[]
  /** Header names in lower case; a repeated header holds every value. */
  headers: Record<string, string | string[]>
  body: Buffer
  /** What did not read cleanly (line ends, a body shorter than its Content-Length). */
  notes: string[]
}

/** A capture that is not an HTTP request: a usage error for the diagnose command. */
export class RequestFileError extends Error {}

const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/(\d\.\d)$/
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/

/**
 * Parses a raw HTTP/1 request: request line, headers, blank line, body. The body
 * is every byte after the blank line, exactly. A file saved by an editor with LF
 * line ends still reads, with a note.
 */
export function parseRequestFile (bytes: Buffer): ParsedRequest {
  const notes: string[] = []
  let end = bytes.indexOf('\r\n\r\n')
  let sep = 4
  let eol = '\r\n'
  const lfEnd = bytes.indexOf('\n\n')
  if (end === -1 || (lfEnd !== -1 && lfEnd < end)) {
    if (lfEnd === -1) throw new RequestFileError('no blank line after the headers: not a raw HTTP request')
    end = lfEnd
    sep = 2
    eol = '\n'
    notes.push('the head uses LF line ends, not CRLF: the file was edited or saved as text; its body may have changed too')
  }
  const head = bytes.subarray(0, end).toString('latin1').split(eol)
  const body = bytes.subarray(end + sep)
  const first = REQUEST_LINE.exec(head[0] ?? '')
  if (first === null) throw new RequestFileError(`the first line is not a request line such as "POST /oss/callback HTTP/1.1"`)
  const rawHeaders: string[] = []
  const headers: Record<string, string | string[]> = {}
  for (const line of head.slice(1)) {
    const m = HEADER_LINE.exec(line)
    if (m === null) throw new RequestFileError(`not a header line: ${JSON.stringify(line.slice(0, 80))}`)
    const name = m[1] as string
    const value = m[2] as string
    rawHeaders.push(name, value)
    const key = name.toLowerCase()
    const had = headers[key]
    headers[key] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value]
  }
  const declared = headers['content-length']
  if (typeof declared === 'string' && /^\d+$/.test(declared) && Number(declared) !== body.length) {
    notes.push(`Content-Length says ${declared} bytes, the file holds ${body.length}: ` +
      (body.length < Number(declared) ? 'the capture was cut at its size bound, or the body never arrived whole' : 'extra bytes follow the body'))
  }
  return { method: first[1] as string, url: first[2] as string, httpVersion: first[3] as string, rawHeaders, headers, body, notes }
}
