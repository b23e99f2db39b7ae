import { Writable } from 'node:stream'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'

/** A pino logger that keeps every line in memory, for asserting what the log says (and never says). */
export function captureLogger (level = 'debug'): { logger: FastifyBaseLogger, lines: () => Array<Record<string, unknown>>, text: () => string } {
  const chunks: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _enc, done) { chunks.push(chunk.toString()); done() } })
  const logger = pino({ level }, stream) as unknown as FastifyBaseLogger
  const text = (): string => chunks.join('')
  return { logger, text, lines: () => text().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) }
}
