import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'

/** Bounds of a lingering close. */
export interface LingerOptions {
  /** Bytes the client may still send, read and discarded, before the socket is destroyed. Default 8 MiB. */
  maxBytes: number
  /** How long to wait for the client to stop sending, in ms. Default 2000. */
  maxMs: number
}

/** The bounds nginx's lingering close is known for, in bytes and ms. */
export const LINGER_DEFAULTS: Readonly<LingerOptions> = Object.freeze({ maxBytes: 8 * 1024 * 1024, maxMs: 2000 })

const lingering = new WeakSet<Socket>()

/**
 * Closes a connection after an early refusal as nginx's lingering close does: end our side once the reply
 * is written, then read and discard what the client still sends until it closes, `maxBytes` or `maxMs`.
 * Closing with unread bytes in the receive buffer sends a TCP reset, and a client still sending its body
 * then reads ECONNRESET or EPIPE instead of the reply.
 */
export function lingeringClose (socket: Socket, options: LingerOptions, incoming?: IncomingMessage): void {
  if (lingering.has(socket) || socket.destroyed) return
  lingering.add(socket)
  let read = 0
  const timer = setTimeout(() => socket.destroy(), options.maxMs)
  socket.once('close', () => clearTimeout(timer))
  // Nothing more is parsed: Node's HTTP parser stops being fed, and a 'data' listener takes the socket
  // back from it (Node's server detaches its parser from the socket's handle when one is added).
  socket.removeAllListeners('data')
  socket.on('data', (chunk: Buffer) => {
    read += chunk.length
    if (read > options.maxBytes) socket.destroy()
  })
  socket.once('end', () => socket.destroy())
  incoming?.resume()
  // The request's stream may have stopped the socket's reads at its high-water mark, below the stream
  // layer (as Node's server does on pause); start them again as its resume handler would.
  const handle = (socket as Socket & { _handle?: { reading?: boolean, readStart?: () => number } | null })._handle
  if (handle?.reading === false && typeof handle.readStart === 'function') {
    handle.reading = true
    handle.readStart()
  }
  socket.resume()
  socket.end()
}

/** Whether {@link lingeringClose} has begun on this socket. */
export function isLingering (socket: Socket): boolean {
  return lingering.has(socket)
}

/**
 * Makes Node's own close after the current response (it calls `destroySoon` once a `Connection: close`
 * reply is written) a lingering close.
 */
export function lingerAfterReply (socket: Socket, options: LingerOptions, incoming?: IncomingMessage): void {
  socket.destroySoon = () => { lingeringClose(socket, options, incoming) }
}
